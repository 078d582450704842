import { startStack, TEST_API_KEY, WORKFLOW_IDS, type TestStack } from './support/stack.js';

describe('startVerification against the emulator', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ IDV_TOKEN_TTL_SECONDS: '900' });
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

    const [device, session, ...rest] = stack.emulator.requests;
    expect(rest).toEqual([]);
    expect(device).toMatchObject({ step: 'device', method: 'POST', path: '/api/device/ephemeral', query: {} });
    expect(device?.headers.authorization).toBe(TEST_API_KEY);
    expect(device?.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(device?.body ?? '')).toEqual({ ttl: 900 });

    const token = [...stack.emulator.sessions.values()].find((s) => s.id === handoff.sessionId)?.token;
    expect(token).toMatch(/^Token tr-/);
    expect(session).toMatchObject({ step: 'session', method: 'POST', path: '/api/sessions', query: { workflowId: WORKFLOW_IDS.kyc } });
    expect(session?.headers.authorization).toBe(token);
    expect(session?.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(session?.body ?? '')).toEqual({ metadata: { externalUserId: 'user-42' } });

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
    expect(stack.emulator.sessions.get(handoff.sessionId)?.metadata).toEqual({ externalUserId: 'user-42' });
  });

  it('starts the named workflow', async () => {
    const response = await stack.startVerification({ workflow: 'age' });
    expect(response.body.data.startVerification.workflow).toBe('age');
    expect(stack.emulator.requests[1]?.query).toEqual({ workflowId: WORKFLOW_IDS.age });
  });

  it('rejects an unknown workflow name as BAD_USER_INPUT without calling the platform', async () => {
    const response = await stack.startVerification({ workflow: 'aml' });
    expect(response.body.data).toBeNull();
    expect(response.body.errors[0].extensions).toEqual({ code: 'BAD_USER_INPUT', retryable: false, field: 'workflow' });
    expect(response.body.errors[0].message).toBe('Unknown workflow. Use one of: kyc, age, or omit "workflow" for the default.');
    expect(stack.emulator.requests).toEqual([]);
  });

  it('binds concurrent callers each to their own session', async () => {
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
    expect(stack.emulator.callCount('session')).toBe(users.length);
  });

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
});

describe('startVerification with other platform settings', () => {
  it('sends the API key with IDV_API_KEY_SCHEME and builds URLs on IDV_PUBLIC_URL', async () => {
    const stack = await startStack(
      { IDV_API_KEY_SCHEME: 'ApiKey', IDV_DEFAULT_WORKFLOW: 'age', IDV_PUBLIC_URL: 'https://phones.example.com/idv/' },
      { apiKeyScheme: 'ApiKey' },
    );
    try {
      const response = await stack.startVerification();
      const handoff = response.body.data.startVerification;
      expect(stack.emulator.requests[0]?.headers.authorization).toBe(`ApiKey ${TEST_API_KEY}`);
      expect(handoff.workflow).toBe('age');
      expect(handoff.mobileUrl.startsWith('https://phones.example.com/idv/mobile?authorization=Token%20tr-')).toBe(true);
      expect(handoff.captureUrl.startsWith('https://phones.example.com/idv/capture?url=https%3A%2F%2Fphones.example.com%2Fidv%2Fmobile')).toBe(true);
    } finally {
      await stack.close();
    }
  });

  it('reads the session id from "sessionId" when the platform omits "id"', async () => {
    const stack = await startStack();
    try {
      stack.emulator.inject('session', { kind: 'json', body: { sessionId: 'abcdef0123456789abcdef01', status: 0 } });
      const response = await stack.startVerification();
      expect(response.body.data.startVerification.sessionId).toBe('abcdef0123456789abcdef01');
      expect(response.body.data.startVerification.mobileUrl).toContain('&sessionId=abcdef0123456789abcdef01');
    } finally {
      await stack.close();
    }
  });
});
