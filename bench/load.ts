/**
 * Load from autocannon's programmatic API: loopback only, a bounded number of connections and a
 * bounded duration, either closed-loop (as fast as the target answers) or at a fixed overall rate.
 * Latencies are kept per response, in fractional ms: autocannon's own histogram has 1 ms steps,
 * too coarse for a 1 ms goal.
 */
import autocannon from 'autocannon';
import { percentile } from './stats.js';

export interface LoadOptions {
  readonly url: string;
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Authorization header values sent in turn, one per request. */
  readonly callers: readonly string[];
  readonly connections: number;
  readonly durationSeconds: number;
  /** Requests per second over all connections; absent: closed loop. */
  readonly overallRate?: number;
}

export interface LoadResult {
  /** Responses that are a handoff. */
  readonly ok: number;
  /** Non-2xx, GraphQL errors, socket errors and timeouts. */
  readonly errors: number;
  readonly responses: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

const MAX_CONNECTIONS = 512;
const MAX_DURATION_SECONDS = 600;

export async function load(options: LoadOptions): Promise<LoadResult> {
  const { hostname } = new URL(options.url);
  if (hostname !== '127.0.0.1') throw new Error(`the benchmark only loads 127.0.0.1, not ${hostname}`);
  if (options.connections > MAX_CONNECTIONS || options.durationSeconds > MAX_DURATION_SECONDS) throw new Error('load is out of bounds');

  const latencies: number[] = [];
  const started = performance.now();
  let next = 0;
  const instance = autocannon({
    url: options.url,
    method: 'POST',
    headers: options.headers,
    body: options.body,
    requests: [
      {
        setupRequest: (request: autocannon.Request) => ({
          ...request,
          headers: { ...request.headers, authorization: options.callers[next++ % options.callers.length] },
        }),
      },
    ],
    connections: options.connections,
    duration: options.durationSeconds,
    ...(options.overallRate ? { overallRate: options.overallRate } : {}),
    timeout: 30,
    // A GraphQL error comes with HTTP 200: only a handoff counts as a success.
    verifyBody: (body: string) => isHandoff(body),
  } as autocannon.Options) as unknown as autocannon.Instance & PromiseLike<autocannon.Result>;
  // Without a callback, autocannon returns its event emitter, which is also a promise of the result.
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    if (statusCode === 200) latencies.push(responseTime);
  });
  const result = await instance;
  const seconds = (performance.now() - started) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  const responses = result.requests.total;
  const errors = result.non2xx + result.errors + result.timeouts + result.mismatches;
  return {
    ok: responses - result.non2xx - result.mismatches,
    errors,
    responses,
    seconds,
    perSecond: responses / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length ? (sorted[sorted.length - 1] as number) : Number.NaN,
  };
}

/** A body that carries a handoff and no error (the gateway's and the baselines' shape). */
export function isHandoff(body: unknown): boolean {
  const text = String(body);
  return text.includes('"sessionId":"') && !text.includes('"errors"');
}
