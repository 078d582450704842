import { startStack, type TestStack } from './support/stack.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type LogLine = Record<string, any>;

describe('request ids', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.close());
  beforeEach(() => {
    stack.logs.length = 0;
    stack.emulator.resetRecords();
  });

  const lines = (): LogLine[] => stack.logs.map((line) => JSON.parse(line) as LogLine);

  it('round-trip: header in, header out, sent upstream on every call, and in the operation log line', async () => {
    const response = await stack.startVerification({ headers: { 'x-request-id': 'app-7f3a.retry:2_x' } });
    expect(response.body.data.startVerification.sessionId).toBeDefined();
    expect(response.headers.get('x-request-id')).toBe('app-7f3a.retry:2_x');
    expect(stack.emulator.requests.map((request) => [request.step, request.headers['x-request-id']])).toEqual([
      ['device', 'app-7f3a.retry:2_x'],
      ['session', 'app-7f3a.retry:2_x'],
    ]);
    const operation = lines().find((line) => line.msg === 'graphql operation');
    expect(operation).toMatchObject({
      requestId: 'app-7f3a.retry:2_x',
      operation: 'StartVerification',
      field: 'startVerification',
      user: expect.stringMatching(/^u_/),
      workflow: 'kyc',
      outcome: 'OK',
      durationMs: expect.any(Number),
      upstream: [
        { step: 'device', status: 200, ms: expect.any(Number) },
        { step: 'session', status: 200, ms: expect.any(Number) },
      ],
    });
  });

  it("is in every line a request writes, the data source's upstream-failure line included", async () => {
    stack.emulator.inject('session', { kind: 'status', status: 503 });
    const response = await stack.startVerification({ headers: { 'x-request-id': 'req-failing-1' } });
    expect(response.body.errors[0].extensions.code).toBe('IDV_UNAVAILABLE');
    const written = lines();
    expect(written.map((line) => line.msg)).toEqual(['IDV session call failed: HTTP 503', 'graphql operation']);
    expect(written.every((line) => line.requestId === 'req-failing-1')).toBe(true);
    // Once each: the mixin and a child binding must not both write it.
    expect(stack.logs.every((line) => line.split('"requestId"').length === 2)).toBe(true);
    expect(written[0]).toMatchObject({ component: 'idv', step: 'session', status: 503 });
    expect(written[1]).toMatchObject({ outcome: 'IDV_UNAVAILABLE', upstream: [{ step: 'device', status: 200 }, { step: 'session', status: 503 }] });
  });

  it.each([
    ['missing', undefined],
    ['too long', 'a'.repeat(129)],
    ['with a space', 'two words'],
    ['with a newline escape attempt', 'id%0d%0aset-cookie'],
  ])('is generated when the header is %s, and used the same way', async (_case, header) => {
    const response = await stack.startVerification({ headers: header === undefined ? {} : { 'x-request-id': header } });
    const id = response.headers.get('x-request-id') ?? '';
    expect(id).toMatch(UUID);
    expect(stack.emulator.requests.map((request) => request.headers['x-request-id'])).toEqual([id, id]);
    expect(lines().find((line) => line.msg === 'graphql operation')?.requestId).toBe(id);
  });

  it('is answered on requests that never reach GraphQL, and on the health endpoints', async () => {
    const malformed = await stack.post('{"query": ', { 'x-request-id': 'bad-json-1' });
    expect(malformed.status).toBe(400);
    expect(malformed.headers.get('x-request-id')).toBe('bad-json-1');
    const health = await fetch(new URL('/healthz', stack.url), { headers: { 'x-request-id': 'probe-1' } });
    expect(health.headers.get('x-request-id')).toBe('probe-1');
  });
});
