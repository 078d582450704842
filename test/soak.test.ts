import { SignJWT } from 'jose';
import { startEmulator, type Fault, type IdvEmulator } from '../src/emulator/index.js';
import { startMeasuredGateway } from './support/measured-gateway.js';
import { START_VERIFICATION, TEST_API_KEY, TEST_JWT_SECRET, WORKFLOW_IDS } from './support/stack.js';

const TOTAL = 3000;
const CONCURRENCY = 50;
const WARM_UP = 2000;
const FAULTS: Fault[] = [
  { kind: 'status', status: 500 },
  { kind: 'status', status: 503 },
  { kind: 'status', status: 429 },
  { kind: 'status', status: 400 },
  { kind: 'reset' },
  { kind: 'truncated' },
  { kind: 'html' },
  { kind: 'hang' },
];

interface Tally {
  handoffs: number;
  errors: Record<string, number>;
  malformed: string[];
  misbound: number;
}

/** `count` mutations from CONCURRENCY concurrent callers, each answer checked as it arrives. */
async function load(url: string, emulator: IdvEmulator, count: number, tally: Tally, tokens: string[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const user = next++ % tokens.length;
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[user]}` },
        body: JSON.stringify({ query: START_VERIFICATION }),
      });
      const text = await response.text();
      const body = JSON.parse(text) as { data?: { startVerification?: { sessionId: string } }; errors?: { extensions?: { code?: string } }[] };
      const handoff = body.data?.startVerification;
      if (handoff) {
        tally.handoffs += 1;
        if (emulator.sessions.get(handoff.sessionId)?.metadata.externalUserId !== `soak-${user}`) tally.misbound += 1;
        continue;
      }
      const code = body.errors?.[0]?.extensions?.code;
      if (code === 'IDV_UNAVAILABLE' || code === 'IDV_FAILED') tally.errors[code] = (tally.errors[code] ?? 0) + 1;
      else tally.malformed.push(text.slice(0, 200));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  emulator.resetRecords();
}

const percent = (before: number, after: number) => `${(((after - before) / before) * 100).toFixed(1)} %`;
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;

describe('soak: sustained load with random upstream faults', () => {
  it(`answers ${TOTAL} mutations at ${CONCURRENCY} concurrent, 20 % faults, and returns to its warm memory`, async () => {
    const emulator = await startEmulator({ apiKey: TEST_API_KEY, workflowIds: [WORKFLOW_IDS.kyc] });
    const gateway = await startMeasuredGateway(emulator, {
      IDV_TIMEOUT_MS: '100',
      IDV_BREAKER_FAILURES: '10000',
      // Thousands of sessions for a few callers: the per-caller limit (issue 5) is not what this measures.
      RATE_LIMIT_MAX: '0',
    });
    const exits: unknown[] = [];
    gateway.child.on('exit', (code) => exits.push(code));
    try {
      const secret = new TextEncoder().encode(TEST_JWT_SECRET);
      const tokens = await Promise.all(
        Array.from({ length: 200 }, (_, i) => new SignJWT({ sub: `soak-${i}` }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(secret)),
      );
      emulator.randomFaults({ rate: 0.2, faults: FAULTS, seed: 42 });

      await load(gateway.url, emulator, WARM_UP, { handoffs: 0, errors: {}, malformed: [], misbound: 0 }, tokens);
      const warm = await gateway.memory();
      const tally: Tally = { handoffs: 0, errors: {}, malformed: [], misbound: 0 };
      const started = performance.now();
      await load(gateway.url, emulator, TOTAL, tally, tokens);
      const seconds = (performance.now() - started) / 1000;
      const after = await gateway.memory();

      console.log(
        [
          `soak: ${TOTAL} mutations in ${seconds.toFixed(1)} s (${(TOTAL / seconds).toFixed(0)}/s) at ${CONCURRENCY} concurrent, 20 % random upstream faults`,
          `  handoffs ${tally.handoffs}, IDV_UNAVAILABLE ${tally.errors.IDV_UNAVAILABLE ?? 0}, IDV_FAILED ${tally.errors.IDV_FAILED ?? 0}, other ${tally.malformed.length}, misbound ${tally.misbound}`,
          `  gateway heap after GC: ${mb(warm.heapUsed)} warm → ${mb(after.heapUsed)} (${percent(warm.heapUsed, after.heapUsed)})`,
          `  gateway RSS after GC:  ${mb(warm.rss)} warm → ${mb(after.rss)} (${percent(warm.rss, after.rss)}): goal ≤ +10 % ${after.rss <= warm.rss * 1.1 ? 'MET' : 'NOT MET'}`,
        ].join('\n'),
      );

      expect(exits).toEqual([]);
      expect(tally.malformed).toEqual([]);
      expect(tally.misbound).toBe(0);
      expect(tally.handoffs + (tally.errors.IDV_UNAVAILABLE ?? 0) + (tally.errors.IDV_FAILED ?? 0)).toBe(TOTAL);
      expect(tally.handoffs).toBeGreaterThan(TOTAL * 0.5);
      expect(tally.errors.IDV_UNAVAILABLE).toBeGreaterThan(0);
      // The leak check: live objects after a full collection, which the machine's load does not
      // move. RSS depends on the allocator and on how many requests overlapped at the peak, which
      // a shared machine's load does move, so it is a printed figure (the guide: memory goals are
      // read from printed figures, not asserted).
      expect(after.heapUsed).toBeLessThanOrEqual(warm.heapUsed * 1.1);
    } finally {
      await gateway.stop();
      await emulator.close();
    }
  }, 120_000);
});
