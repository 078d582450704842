import { startEmulator } from '../src/emulator/index.js';
import { startMeasuredGateway } from './support/measured-gateway.js';
import { TEST_API_KEY, WORKFLOW_IDS } from './support/stack.js';

const DOCUMENTS = 150;
// 20 000 comment tokens in ~60 KB of JSON: within the body limit, and not counted by the token limit.
const COMMENT_LINES = 20_000;
const MB = 2 ** 20;

/**
 * Apollo caches every document that validates, before any resolver checks the caller. Its default
 * cache charged a document its JSON's size (~0.5 KB here) while the document kept ~1.7 MB alive
 * (the query text and its token list): 150 unauthenticated requests grew the heap by ~250 MB, and
 * a few hundred more ended the process. The gateway's cache counts what a document holds.
 */
describe('the document cache (production mode, unauthenticated clients)', () => {
  it(`keeps the heap bounded under ${DOCUMENTS} distinct comment-padded documents`, async () => {
    const emulator = await startEmulator({ apiKey: TEST_API_KEY, workflowIds: [WORKFLOW_IDS.kyc] });
    const gateway = await startMeasuredGateway(emulator);
    try {
      const send = async (query: string) => {
        const response = await fetch(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
        return { status: response.status, body: (await response.json()) as unknown };
      };
      // Warm: the first requests compile and allocate what every later one reuses.
      for (let i = 0; i < 20; i += 1) await send(`query Warm${i} { __typename }`);
      const before = (await gateway.memory()).heapUsed;

      for (let i = 0; i < DOCUMENTS; i += 1) {
        const answer = await send(`query Padded${i} { __typename }\n${'#\n'.repeat(COMMENT_LINES)}`);
        expect(answer).toEqual({ status: 200, body: { data: { __typename: 'Query' } } });
      }
      const after = (await gateway.memory()).heapUsed;
      console.log(`document cache: heap after GC ${(before / MB).toFixed(1)} MB → ${(after / MB).toFixed(1)} MB after ${DOCUMENTS} padded documents`);

      // The cache's budget is 30 MiB of estimated heap; the unbounded cache took ~250 MB here.
      expect(after - before).toBeLessThan(64 * MB);
      // Still a cache: the usual operation is served.
      expect(await send('query Usual { __typename }')).toEqual({ status: 200, body: { data: { __typename: 'Query' } } });
    } finally {
      await gateway.stop();
      await emulator.close();
    }
  }, 60_000);
});
