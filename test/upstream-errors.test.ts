import type { EmulatedStep, Fault } from '../src/emulator/index.js';
import { FAULTS, type Expected } from './support/faults.js';
import { API_STEPS, FLOWS, startFlowStack } from './support/flows.js';
import { startStack, TEST_API_KEY, type TestStack } from './support/stack.js';

const DEVICE_RETRIES = 2;

/**
 * The fault matrix: every step of every flow × every way the platform can fail, kept failing.
 * For each: what the client gets, how many calls the platform saw (the device call retried where
 * safe, never a second session), one log line, and a normal answer to the next request.
 */
describe.each(FLOWS)('upstream failures reach the client as coded errors, IDV_FLOW $name', (flow) => {
  const cases = flow.steps.flatMap((step) => FAULTS.map(([name, fault, expected]) => [step, name, fault, expected] as const));
  // The breaker has its own tests; here it must not open across rows.
  const env = { IDV_TIMEOUT_MS: '300', IDV_DEVICE_RETRIES: String(DEVICE_RETRIES), IDV_BREAKER_FAILURES: '10000' };
  let shared: TestStack;
  beforeAll(async () => {
    shared = await startFlowStack(flow, env);
  });
  afterAll(() => shared.close());
  beforeEach(() => {
    shared.emulator.clearFaults();
    shared.emulator.resetRecords();
  });

  it.each(cases)('%s step, %s', async (step, _name, fault, expected) => {
    // A Retry-After holds every later call of that gateway, so such a row gets a gateway of its own.
    const held = expected.retryAfterSeconds !== undefined;
    const stack = held ? await startFlowStack(flow, env) : shared;
    try {
      await expectCodedFailure(stack, step, fault, expected, held);
    } finally {
      if (held) await stack.close();
    }
  });

  async function expectCodedFailure(stack: TestStack, step: EmulatedStep, fault: Fault, expected: Expected, held: boolean): Promise<void> {
    stack.emulator.inject(step, fault, Infinity);
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
    // One call per step reached (the device call retried where safe), never a second session,
    // never a switch to another flow.
    const reached = flow.steps.slice(0, flow.steps.indexOf(step) + 1);
    const attempts = step === 'device' && expected.retried ? 1 + DEVICE_RETRIES : 1;
    for (const apiStep of API_STEPS) {
      expect(stack.emulator.callCount(apiStep)).toBe(!reached.includes(apiStep) ? 0 : apiStep === step ? attempts : 1);
    }

    // The failure is logged once, naming the step and the attempts made.
    const failureLines = stack.logs.slice(logStart).filter((line) => line.includes('call failed:'));
    expect(failureLines).toHaveLength(1);
    expect(JSON.parse(failureLines[0] ?? '{}')).toMatchObject({ step, kind: expect.any(String), attempts, requestId: expect.any(String) });

    stack.emulator.clearFaults();
    const next = await stack.startVerification();
    if (held) {
      // Until the Retry-After has passed, the next request fails at once, without an upstream call.
      expect(next.body.errors[0].extensions).toEqual({ code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: expect.any(Number) });
      expect(next.body.errors[0].extensions.retryAfterSeconds).toBeGreaterThanOrEqual(expected.retryAfterSeconds! - 1);
      expect(next.body.errors[0].extensions.retryAfterSeconds).toBeLessThanOrEqual(expected.retryAfterSeconds!);
      for (const apiStep of API_STEPS) {
        expect(stack.emulator.callCount(apiStep)).toBe(!reached.includes(apiStep) ? 0 : apiStep === step ? attempts : 1);
      }
      // This gateway's log is not the shared one the last test reads: the same check here.
      const log = stack.logs.join('');
      expect(log).not.toContain(TEST_API_KEY);
      for (const session of stack.emulator.sessions.values()) expect(log).not.toContain(session.token.slice('Token '.length));
    } else {
      // The next request is served normally.
      expect(next.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    }
  }

  it('never logs the API key or an issued token', () => {
    const stack = shared;
    const tokens = [...stack.emulator.sessions.values()].map((session) => session.token);
    expect(tokens.length).toBeGreaterThan(0);
    const log = stack.logs.join('');
    expect(log).not.toContain(TEST_API_KEY);
    for (const token of tokens) expect(log).not.toContain(token.slice('Token '.length));
  });
});

describe('retries of the ephemeral-device call', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ IDV_TIMEOUT_MS: '300' });
  });
  afterAll(() => stack.close());
  beforeEach(() => {
    stack.emulator.clearFaults();
    stack.emulator.resetRecords();
  });

  it.each(FAULTS.filter(([, , expected]) => expected.retried))('recover transparently from one %s', async (_name, fault) => {
    stack.emulator.inject('device', fault, 1);
    const response = await stack.startVerification();
    expect(response.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    expect(stack.emulator.callCount('device')).toBe(2);
    expect(stack.emulator.callCount('session')).toBe(1);
  });

  it('waits out a short Retry-After', async () => {
    stack.emulator.inject('device', { kind: 'status', status: 503, headers: { 'retry-after': '1' } }, 1);
    const response = await stack.startVerification();
    expect(response.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    const [first, second] = stack.emulator.requests.filter((request) => request.step === 'device');
    expect(second!.receivedAt - first!.receivedAt).toBeGreaterThanOrEqual(950);
  });

  it('gives up at the mutation deadline', async () => {
    const tight = await startStack({ IDV_TIMEOUT_MS: '300', IDV_DEADLINE_MS: '500', IDV_DEVICE_RETRIES: '10' });
    try {
      tight.emulator.inject('device', { kind: 'hang' }, Infinity);
      const response = await tight.startVerification();
      expect(response.body.errors[0].extensions).toEqual({ code: 'IDV_UNAVAILABLE', retryable: true });
      // 300 ms, then no retry fits in what is left of 500 ms.
      expect(tight.emulator.callCount('device')).toBeLessThanOrEqual(2);
      expect(tight.emulator.callCount('session')).toBe(0);
    } finally {
      await tight.close();
    }
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
      // A refused connection is retried (nothing was sent), then reported with the attempts made.
      expect(stack.logs.join('')).toMatch(/"attempts":3/);
      expect(response.text).not.toContain(emulatorUrl);
      expect(response.text).not.toContain('ECONNREFUSED');
    } finally {
      await stack.gateway.stop();
    }
  });
});

// The contract: read `id`, fall back to `sessionId` (as the vendor's own load tests do).
describe('the session id in the session answer', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.close());

  it.each([
    ['id', { id: 'abc123', sessionId: 'other' }, 'abc123'],
    ['sessionId without id', { sessionId: 'abc123' }, 'abc123'],
    ['sessionId beside a null id', { id: null, sessionId: 'abc123' }, 'abc123'],
    ['sessionId beside an empty id', { id: '', sessionId: 'abc123' }, 'abc123'],
    ['sessionId beside a numeric id', { id: 123, sessionId: 'abc123' }, 'abc123'],
  ])('takes %s', async (_name, body, expected) => {
    stack.emulator.inject('session', { kind: 'json', body });
    const response = await stack.startVerification();
    expect(response.body.data.startVerification.sessionId).toBe(expected);
    expect(new URL(response.body.data.startVerification.mobileUrl).searchParams.get('sessionId')).toBe(expected);
  });
});
