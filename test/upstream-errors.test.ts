import type { Fault } from '../src/emulator/index.js';
import { API_STEPS, FLOWS, startFlowStack } from './support/flows.js';
import { startStack, TEST_API_KEY, type TestStack } from './support/stack.js';

type Expected = { code: 'IDV_UNAVAILABLE' | 'IDV_FAILED'; retryAfterSeconds?: number };
const unavailable: Expected = { code: 'IDV_UNAVAILABLE' };
const failed: Expected = { code: 'IDV_FAILED' };

// The README's error table, as the emulator produces each case. Every row is run for every
// upstream step of every flow.
const FAULTS: [string, Fault, Expected][] = [
  ['500', { kind: 'status', status: 500, body: 'Internal Server Error' }, unavailable],
  ['502', { kind: 'status', status: 502, body: '<html>Bad Gateway</html>' }, unavailable],
  ['503', { kind: 'status', status: 503 }, unavailable],
  ['503 with Retry-After', { kind: 'status', status: 503, headers: { 'retry-after': '7' } }, { code: 'IDV_UNAVAILABLE', retryAfterSeconds: 7 }],
  ['429 with Retry-After', { kind: 'status', status: 429, body: { message: 'Too many requests' }, headers: { 'retry-after': '30' } }, { code: 'IDV_UNAVAILABLE', retryAfterSeconds: 30 }],
  ['429 without Retry-After', { kind: 'status', status: 429 }, unavailable],
  ['timeout (no answer)', { kind: 'hang' }, unavailable],
  ['connection reset before the answer', { kind: 'reset' }, unavailable],
  ['connection reset mid-body', { kind: 'truncated' }, unavailable],
  ['400', { kind: 'status', status: 400, body: { message: 'Bad request' } }, failed],
  ['401', { kind: 'status', status: 401, body: { message: 'Unauthorized' } }, failed],
  ['403', { kind: 'status', status: 403, body: 'Forbidden' }, failed],
  ['404', { kind: 'status', status: 404, body: { message: 'Not found' } }, failed],
  ['405', { kind: 'status', status: 405, body: { message: 'Method Not Allowed' } }, failed],
  ['302 redirect', { kind: 'status', status: 302, headers: { location: 'https://elsewhere.example.com/' } }, failed],
  ['HTML instead of JSON', { kind: 'html' }, failed],
  ['JSON without the expected fields', { kind: 'json', body: { status: 0 } }, failed],
  ['JSON that is not an object', { kind: 'json', body: ['Token tr-x'] }, failed],
  ['a field of the wrong type', { kind: 'json', body: { authorization: 42, id: 42, url: 42, expiresAt: 42 } }, failed],
  [
    'a value that cannot be used in a header or URL',
    { kind: 'json', body: { authorization: 'Token\r\nx: y', id: 'a\nb', url: 'https://idv.example.com/mobile?sessionId=a\nb', expiresAt: '2030-01-01T00:00:00Z' } },
    failed,
  ],
];

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
