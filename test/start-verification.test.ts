import { expectContractRequests, FLOWS, startFlowStack } from './support/flows.js';
import { startStack, WORKFLOW_IDS, type TestStack } from './support/stack.js';

describe.each(FLOWS)('startVerification against the emulator, IDV_FLOW $name', (flow) => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startFlowStack(flow, { IDV_TOKEN_TTL_SECONDS: '900' });
  });
  afterAll(() => stack.close());
  beforeEach(() => {
    stack.emulator.clearFaults();
    stack.emulator.resetRecords();
  });

  it('sends exactly the contract requests and returns a handoff bound to the caller', async () => {
    const before = Date.now();
    const response = await stack.startVerification({ token: await stack.token('user-42') });
    const after = Date.now();

    expect(response.status).toBe(200);
    expect(response.body.errors).toBeUndefined();
    expect(response.headers.get('cache-control')).toBe('no-store');
    const handoff = response.body.data.startVerification;

    const session = stack.emulator.sessions.get(handoff.sessionId);
    const token = session?.token;
    expect(token).toMatch(/^Token tr-/);
    expectContractRequests(flow, stack.emulator.requests, { userId: 'user-42', workflowId: WORKFLOW_IDS.kyc, ttl: 900, token });

    expect(handoff.sessionId).toMatch(/^[0-9a-f]{24}$/);
    expect(handoff.workflow).toBe('kyc');
    const mobile = new URL(handoff.mobileUrl);
    expect(`${mobile.origin}${mobile.pathname}`).toBe(`${stack.emulator.url}/mobile`);
    expect(mobile.searchParams.get('authorization')).toBe(token);
    expect(mobile.searchParams.get('sessionId')).toBe(handoff.sessionId);
    expect(handoff.mobileUrl).toContain('authorization=Token%20tr-');
    expect(new URL(handoff.captureUrl).searchParams.get('url')).toBe(handoff.mobileUrl);
    expect(handoff.captureUrl.startsWith(`${stack.emulator.url}/capture?url=`)).toBe(true);

    const expiresAt = Date.parse(handoff.expiresAt);
    expect(handoff.expiresAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 900_000 - 1000);
    expect(expiresAt).toBeLessThanOrEqual(after + 900_000);
    expect(session?.metadata).toEqual({ externalUserId: 'user-42' });
    expect(session).not.toHaveProperty('locale');
  });

  it('passes the caller\'s locale to the platform, canonicalised', async () => {
    const response = await stack.startVerification({ token: await stack.token('user-43'), workflow: 'age', locale: 'de-ch' });
    const handoff = response.body.data.startVerification;
    const session = stack.emulator.sessions.get(handoff.sessionId);
    expectContractRequests(flow, stack.emulator.requests, { userId: 'user-43', workflowId: WORKFLOW_IDS.age, ttl: 900, token: session?.token, locale: 'de-CH' });
    expect(session?.locale).toBe('de-CH');
  });

  it('starts the named workflow', async () => {
    const response = await stack.startVerification({ workflow: 'age' });
    expect(response.body.data.startVerification.workflow).toBe('age');
    expect(stack.emulator.requests.at(-1)?.query).toEqual({ workflowId: WORKFLOW_IDS.age });
  });

  it('rejects an unknown workflow name as BAD_USER_INPUT without calling the platform', async () => {
    const response = await stack.startVerification({ workflow: 'aml' });
    expect(response.body.data).toBeNull();
    expect(response.body.errors[0].extensions).toEqual({ code: 'BAD_USER_INPUT', retryable: false, field: 'workflow' });
    expect(response.body.errors[0].message).toBe('Unknown workflow. Use one of: kyc, age, or omit "workflow" for the default.');
    expect(stack.emulator.requests).toEqual([]);
  });

  it.each(['', 'en_US', 'english please', 'x-private', 'i-klingon', 'en--US', `en-${'a'.repeat(70)}`])(
    'rejects the locale %j as BAD_USER_INPUT without calling the platform',
    async (locale) => {
      const response = await stack.startVerification({ locale });
      expect(response.body.data).toBeNull();
      expect(response.body.errors[0].extensions).toEqual({ code: 'BAD_USER_INPUT', retryable: false, field: 'locale' });
      expect(response.body.errors[0].message).toBe('Invalid locale. Use a BCP 47 language tag such as "en" or "de-CH", or omit "locale".');
      expect(stack.emulator.requests).toEqual([]);
    },
  );

  it('binds concurrent callers each to their own session, with one upstream call per step each', async () => {
    const users = Array.from({ length: 25 }, (_, i) => `user-${i}`);
    const responses = await Promise.all(users.map(async (user) => stack.startVerification({ token: await stack.token(user) })));
    const sessionIds = new Set<string>();
    responses.forEach((response, i) => {
      const handoff = response.body.data.startVerification;
      sessionIds.add(handoff.sessionId);
      const session = stack.emulator.sessions.get(handoff.sessionId);
      expect(session?.metadata).toEqual({ externalUserId: users[i] });
      expect(new URL(handoff.mobileUrl).searchParams.get('authorization')).toBe(session?.token);
    });
    expect(sessionIds.size).toBe(users.length);
    // In the deeplink flows that is one upstream call per mutation.
    expect(stack.emulator.requests).toHaveLength(users.length * flow.steps.length);
    for (const step of flow.steps) expect(stack.emulator.callCount(step)).toBe(users.length);
  });

  it('sends a workflow id of any shape exactly as configured (the contract: ids are opaque)', async () => {
    const odd = 'wf one&two=3#4+5/ä?';
    const oddStack = await startFlowStack(flow, { IDV_WORKFLOWS: `odd=${odd}` }, { workflowIds: [odd] });
    try {
      const response = await oddStack.startVerification();
      expect(response.body.data.startVerification.workflow).toBe('odd');
      const sent = oddStack.emulator.requests.filter((request) => request.step !== 'device');
      expect(sent.map((request) => request.query)).toEqual([{ workflowId: odd }]);
    } finally {
      await oddStack.close();
    }
  });

  it('sends the API key with IDV_API_KEY_SCHEME; builds two-step URLs on IDV_PUBLIC_URL, takes one-call URLs as the platform gives them', async () => {
    const schemed = await startFlowStack(
      flow,
      { IDV_API_KEY_SCHEME: 'ApiKey', IDV_DEFAULT_WORKFLOW: 'age', IDV_PUBLIC_URL: 'https://phones.example.com/idv/' },
      { apiKeyScheme: 'ApiKey' },
    );
    try {
      const response = await schemed.startVerification({ token: await schemed.token('user-s') });
      const handoff = response.body.data.startVerification;
      const session = schemed.emulator.sessions.get(handoff.sessionId);
      expectContractRequests(flow, schemed.emulator.requests, {
        userId: 'user-s',
        workflowId: WORKFLOW_IDS.age,
        ttl: 3600,
        token: session?.token,
        apiKeyScheme: 'ApiKey',
      });
      expect(handoff.workflow).toBe('age');
      const base = flow.steps.includes('deeplink') ? schemed.emulator.url : 'https://phones.example.com/idv';
      expect(handoff.mobileUrl.startsWith(`${base}/mobile?authorization=Token%20tr-`)).toBe(true);
      expect(handoff.captureUrl.startsWith(`${base}/capture?url=${encodeURIComponent(`${base}/mobile`)}`)).toBe(true);
    } finally {
      await schemed.close();
    }
  });
});

describe('startVerification, whatever the flow', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.close());

  it('takes the user id from the configured claim only, whatever the input says', async () => {
    const response = await stack.post(
      { query: 'mutation { startVerification(input: { workflow: "kyc", externalUserId: "someone-else" }) { sessionId } }' },
      { authorization: `Bearer ${await stack.token('user-7')}` },
    );
    expect(response.status).toBe(400);
    expect(response.body.errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(stack.emulator.requests).toEqual([]);
  });

  it('lists the configured workflow names for a signed-in caller', async () => {
    const response = await stack.post({ query: '{ workflows }' }, { authorization: `Bearer ${await stack.token()}` });
    expect(response.body).toEqual({ data: { workflows: ['kyc', 'age'] } });
  });

  it('reads the session id from "sessionId" when the platform omits "id"', async () => {
    stack.emulator.inject('session', { kind: 'json', body: { sessionId: 'abcdef0123456789abcdef01', status: 0 } });
    const response = await stack.startVerification();
    expect(response.body.data.startVerification.sessionId).toBe('abcdef0123456789abcdef01');
    expect(response.body.data.startVerification.mobileUrl).toContain('&sessionId=abcdef0123456789abcdef01');
  });
});
