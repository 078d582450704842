import { FAULTS } from './support/faults.js';
import { API_STEPS, FLOWS, startFlowStack } from './support/flows.js';
import { startStack, TEST_API_KEY, type TestStack } from './support/stack.js';

describe.each(FLOWS)('upstream failures reach the client as coded errors, IDV_FLOW $name', (flow) => {
  const cases = flow.steps.flatMap((step) => FAULTS.map(([name, fault, expected]) => [step, name, fault, expected] as const));
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startFlowStack(flow, { IDV_TIMEOUT_MS: '300' });
  });
  afterAll(() => stack.close());
  beforeEach(() => {
    stack.emulator.clearFaults();
    stack.emulator.resetRecords();
  });

  it.each(cases)('%s step, %s', async (step, _name, fault, expected) => {
    stack.emulator.inject(step, fault);
    const token = await stack.token('user-e');
    const logStart = stack.logs.length;
    const response = await stack.startVerification({ token });

    expect(response.status).toBe(200);
    expect(response.body.data).toBeNull();
    expect(response.body.errors).toHaveLength(1);
    const [error] = response.body.errors;
    expect(error.extensions).toEqual({
      code: expected.code,
      retryable: expected.code === 'IDV_UNAVAILABLE',
      ...(expected.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: expected.retryAfterSeconds }),
    });
    expect(error.path).toEqual(['startVerification']);
    // Nothing upstream leaks: no key, no token, no upstream address, no upstream body.
    for (const secret of [TEST_API_KEY, token, stack.emulator.url, '127.0.0.1', 'Token tr-', 'Unauthorized', 'Forbidden']) {
      expect(response.text).not.toContain(secret);
    }
    // Exactly one call per step reached, never a second session, never a switch to another flow.
    const reached = flow.steps.slice(0, flow.steps.indexOf(step) + 1);
    for (const apiStep of API_STEPS) expect(stack.emulator.callCount(apiStep)).toBe(reached.includes(apiStep) ? 1 : 0);

    // The failure is logged once, naming the step.
    const failureLines = stack.logs.slice(logStart).filter((line) => line.includes('call failed'));
    expect(failureLines).toHaveLength(1);
    expect(JSON.parse(failureLines[0] ?? '{}')).toMatchObject({ step, kind: expect.any(String) });

    // The next request is served normally.
    const next = await stack.startVerification();
    expect(next.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
  });

  it('never logs the API key or an issued token', () => {
    const tokens = [...stack.emulator.sessions.values()].map((session) => session.token);
    expect(tokens.length).toBeGreaterThan(0);
    const log = stack.logs.join('');
    expect(log).not.toContain(TEST_API_KEY);
    for (const token of tokens) expect(log).not.toContain(token.slice('Token '.length));
  });
});

describe('upstream unreachable', () => {
  it('reports a refused connection as IDV_UNAVAILABLE', async () => {
    const stack = await startStack();
    const emulatorUrl = stack.emulator.url;
    await stack.emulator.close();
    try {
      const response = await stack.startVerification();
      expect(response.body.errors[0].extensions).toEqual({ code: 'IDV_UNAVAILABLE', retryable: true });
      expect(response.text).not.toContain(emulatorUrl);
      expect(response.text).not.toContain('ECONNREFUSED');
    } finally {
      await stack.gateway.stop();
    }
  });
});
