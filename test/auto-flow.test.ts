import { startStack, type TestStack } from './support/stack.js';

const DECIDED_TWO_STEP = 'using the two-step flow from now on';
const DECIDED_DEEPLINK = 'using it from now on';

function steps(stack: TestStack): string[] {
  return stack.emulator.requests.map((request) => request.step);
}

function linesWith(stack: TestStack, text: string): string[] {
  return stack.logs.filter((line) => line.includes(text));
}

describe('IDV_FLOW=auto', () => {
  let stack: TestStack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  it('falls back to the two-step flow on a platform without the deeplink, and remembers it', async () => {
    stack = await startStack({ IDV_FLOW: 'auto' }, { deeplink: false });
    expect(stack.gateway.idvFlow()).toEqual({ configured: 'auto', active: null });

    const first = await stack.startVerification({ token: await stack.token('user-a') });
    expect(first.body.errors).toBeUndefined();
    expect(steps(stack)).toEqual(['deeplink', 'device', 'session']);
    expect(stack.emulator.sessions.get(first.body.data.startVerification.sessionId)?.via).toBe('session');
    expect(stack.gateway.idvFlow()).toEqual({ configured: 'auto', active: 'ephemeral' });

    stack.emulator.resetRecords();
    const second = await stack.startVerification({ token: await stack.token('user-b') });
    expect(second.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    expect(steps(stack)).toEqual(['device', 'session']);
    expect(linesWith(stack, DECIDED_TWO_STEP)).toHaveLength(1);
    expect(JSON.parse(linesWith(stack, DECIDED_TWO_STEP)[0] ?? '{}')).toMatchObject({ level: 40, idvFlow: 'ephemeral', status: 404 });
  });

  it('falls back on 405 as on 404', async () => {
    stack = await startStack({ IDV_FLOW: 'auto' });
    stack.emulator.inject('deeplink', { kind: 'status', status: 405, body: { message: 'Method Not Allowed' } });
    const response = await stack.startVerification();
    expect(response.body.errors).toBeUndefined();
    expect(steps(stack)).toEqual(['deeplink', 'device', 'session']);
    expect(stack.gateway.idvFlow().active).toBe('ephemeral');
  });

  it('decides once, and logs once, when the first calls arrive together', async () => {
    stack = await startStack({ IDV_FLOW: 'auto' }, { deeplink: false });
    const running = stack;
    const responses = await Promise.all(Array.from({ length: 6 }, async (_, i) => running.startVerification({ token: await running.token(`user-${i}`) })));
    for (const response of responses) expect(response.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    expect(linesWith(stack, DECIDED_TWO_STEP)).toHaveLength(1);
    stack.emulator.resetRecords();
    await stack.startVerification();
    expect(steps(stack)).toEqual(['device', 'session']);
  });

  it('keeps the deeplink on a platform that has it, and then reports its failures without switching', async () => {
    stack = await startStack({ IDV_FLOW: 'auto' });
    const first = await stack.startVerification();
    expect(steps(stack)).toEqual(['deeplink']);
    expect(stack.emulator.sessions.get(first.body.data.startVerification.sessionId)?.via).toBe('deeplink');
    expect(stack.gateway.idvFlow()).toEqual({ configured: 'auto', active: 'deeplink' });
    expect(linesWith(stack, DECIDED_DEEPLINK)).toHaveLength(1);

    stack.emulator.resetRecords();
    stack.emulator.inject('deeplink', { kind: 'status', status: 404, body: { message: 'Workflow not found' } });
    const failed = await stack.startVerification();
    expect(failed.body.errors[0].extensions).toEqual({ code: 'IDV_FAILED', retryable: false });
    expect(steps(stack)).toEqual(['deeplink']);
    expect(stack.gateway.idvFlow().active).toBe('deeplink');
  });

  it.each([
    ['503', { kind: 'status', status: 503 } as const, 'IDV_UNAVAILABLE'],
    // Without Retry-After, which would hold the next call too (resilience.test.ts).
    ['429', { kind: 'status', status: 429 } as const, 'IDV_UNAVAILABLE'],
    ['401 (a key without deeplink:write)', { kind: 'status', status: 401 } as const, 'IDV_FAILED'],
    ['403', { kind: 'status', status: 403 } as const, 'IDV_FAILED'],
    ['400', { kind: 'status', status: 400 } as const, 'IDV_FAILED'],
    ['an answer outside the contract', { kind: 'json', body: { url: '/relative?sessionId=x', expiresAt: '2030-01-01T00:00:00Z' } } as const, 'IDV_FAILED'],
    ['a reset connection', { kind: 'reset' } as const, 'IDV_UNAVAILABLE'],
  ])('reports a first deeplink call that fails with %s as usual, never switching flows', async (_name, fault, code) => {
    stack = await startStack({ IDV_FLOW: 'auto' });
    stack.emulator.inject('deeplink', fault);
    const response = await stack.startVerification();
    expect(response.body.errors[0].extensions.code).toBe(code);
    expect(steps(stack)).toEqual(['deeplink']);
    expect(stack.gateway.idvFlow().active).toBeNull();

    stack.emulator.resetRecords();
    await stack.startVerification();
    expect(steps(stack)).toEqual(['deeplink']);
    expect(stack.gateway.idvFlow().active).toBe('deeplink');
  });

  it('does not remember the two-step flow when it fails too (a 404 may be an unknown workflow id)', async () => {
    stack = await startStack({ IDV_FLOW: 'auto' });
    stack.emulator.inject('deeplink', { kind: 'status', status: 404, body: { message: 'Workflow not found' } });
    stack.emulator.inject('session', { kind: 'status', status: 404, body: { message: 'Workflow not found' } });
    const response = await stack.startVerification();
    expect(response.body.errors[0].extensions).toEqual({ code: 'IDV_FAILED', retryable: false });
    expect(steps(stack)).toEqual(['deeplink', 'device', 'session']);
    expect(stack.gateway.idvFlow().active).toBeNull();

    stack.emulator.resetRecords();
    await stack.startVerification();
    expect(steps(stack)).toEqual(['deeplink']);
  });
});

describe('IDV_FLOW=deeplink on a platform without it', () => {
  it('reports IDV_FAILED and never falls back', async () => {
    const stack = await startStack({ IDV_FLOW: 'deeplink' }, { deeplink: false });
    try {
      const response = await stack.startVerification();
      expect(response.body.errors[0].extensions).toEqual({ code: 'IDV_FAILED', retryable: false });
      expect(steps(stack)).toEqual(['deeplink']);
      expect(stack.gateway.idvFlow()).toEqual({ configured: 'deeplink', active: 'deeplink' });
    } finally {
      await stack.close();
    }
  });
});
