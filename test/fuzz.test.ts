import fc from 'fast-check';
import { START_VERIFICATION, startStack, type GraphQLResponse, type TestStack } from './support/stack.js';

const KNOWN_CODES = new Set([
  'UNAUTHENTICATED',
  'BAD_USER_INPUT',
  'BAD_REQUEST',
  'GRAPHQL_VALIDATION_FAILED',
  'GRAPHQL_PARSE_FAILED',
]);

/** Every answer is a handoff or errors that each carry a known code and `retryable`; never a 5xx. */
function expectWellFormed(response: GraphQLResponse): void {
  expect(response.status).toBeLessThan(500);
  if (response.status === 431) return;
  expect(response.body).toBeDefined();
  if (response.body.data?.startVerification) return;
  expect(response.body.errors.length).toBeGreaterThan(0);
  for (const error of response.body.errors) {
    expect(KNOWN_CODES.has(error.extensions?.code)).toBe(true);
    expect(typeof error.extensions.retryable).toBe('boolean');
  }
}

// Bounded: a fixed number of runs and a time budget, with a seed printed on failure to replay it.
const RUNS = { numRuns: 150, interruptAfterTimeLimit: 8000 };

describe('fuzzing the mutation input and the Authorization header', () => {
  let stack: TestStack;
  let bearer: string;
  beforeAll(async () => {
    stack = await startStack({ NODE_ENV: 'production' });
    bearer = await stack.token('fuzz-user');
  });
  afterAll(() => stack.close());

  it('answers any variables with a handoff or a coded error, calling upstream only for a known workflow', async () => {
    const workflow = fc.oneof(fc.constantFrom('kyc', 'age', '', 'KYC', 'kyc '), fc.string(), fc.string({ unit: 'binary', maxLength: 300 }), fc.integer(), fc.constant(null));
    const input = fc.oneof(
      fc.record({ workflow }, { requiredKeys: [] }),
      fc.record({ workflow, locale: fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('en', 'de-CH', 'x')) }, { requiredKeys: [] }),
      fc.anything({ maxDepth: 2 }),
    );
    await fc.assert(
      fc.asyncProperty(input, async (value) => {
        const sessionsBefore = stack.emulator.sessions.size;
        const response = await stack.post({ query: START_VERIFICATION, variables: { input: value } }, { authorization: `Bearer ${bearer}` });
        expectWellFormed(response);
        const started = stack.emulator.sessions.size - sessionsBefore;
        const handoff = response.body?.data?.startVerification;
        expect(started).toBe(handoff ? 1 : 0);
        if (handoff) expect(['kyc', 'age']).toContain(handoff.workflow);
      }),
      RUNS,
    );
  });

  it('answers any Authorization header without an upstream call unless the token is valid', async () => {
    const header = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ maxLength: 200 }).map((value) => `Bearer ${value}`),
      fc.tuple(fc.base64String(), fc.base64String(), fc.base64String()).map(([a, b, c]) => `Bearer ${a}.${b}.${c}`),
      fc.constant(`Bearer ${'x'.repeat(12_000)}`),
      fc.integer({ min: 0, max: bearer.length - 1 }).map((i) => `Bearer ${bearer.slice(0, i)}${bearer[i] === 'A' ? 'B' : 'A'}${bearer.slice(i + 1)}`),
    );
    await fc.assert(
      fc.asyncProperty(header, async (value) => {
        // Header values must be Latin-1 without control characters, or fetch refuses to send them.
        const sendable = value.replace(/[^\x20-\x7e]/g, '?');
        const callsBefore = stack.emulator.requests.length;
        const response = await stack.post({ query: START_VERIFICATION }, { authorization: sendable });
        expectWellFormed(response);
        if (!response.body?.data?.startVerification) expect(stack.emulator.requests.length).toBe(callsBefore);
      }),
      RUNS,
    );
    expect((await stack.startVerification()).status).toBe(200);
  });
});
