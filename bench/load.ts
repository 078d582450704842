/**
 * Load on loopback only, with a bounded number of connections and a bounded duration, either
 * closed-loop (autocannon: as fast as the target answers) or open-loop at a fixed rate (paced
 * here on undici's pool, see pacedLoad). Latencies are kept per response, in fractional ms:
 * autocannon's own histogram has 1 ms steps, too coarse for a 1 ms goal.
 */
import autocannon from 'autocannon';
import { Pool } from 'undici';
import { percentile, requestsDueBy } from './stats.js';

export interface LoadOptions {
  readonly url: string;
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Authorization header values sent in turn, one per request. */
  readonly callers: readonly string[];
  readonly connections: number;
  readonly durationSeconds: number;
  /** Requests per second, evenly spaced (open loop, see pacedLoad); absent: closed loop. */
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
  /** Open loop only: how far behind its schedule the load generator sent a request at worst, in ms. */
  readonly maxSendLagMs?: number;
}

const MAX_CONNECTIONS = 512;
const MAX_DURATION_SECONDS = 600;

export async function load(options: LoadOptions): Promise<LoadResult> {
  const { hostname } = new URL(options.url);
  if (hostname !== '127.0.0.1') throw new Error(`the benchmark only loads 127.0.0.1, not ${hostname}`);
  if (options.connections > MAX_CONNECTIONS || options.durationSeconds > MAX_DURATION_SECONDS) throw new Error('load is out of bounds');
  if (options.overallRate) return pacedLoad({ ...options, overallRate: options.overallRate });

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
  const responses = result.requests.total;
  const errors = result.non2xx + result.errors + result.timeouts + result.mismatches;
  return { ok: responses - result.non2xx - result.mismatches, errors, responses, seconds, perSecond: responses / seconds, ...latencyFigures(latencies) };
}

/**
 * Open loop: one request every 1/rate s whatever the target does, each on a free keep-alive
 * connection of the pool (queued for one when all are busy, so the target never sees more than
 * `connections` at once). The latency of a request counts from the moment it was due, not from
 * when it could be sent, so a target that falls behind is not flattered by fewer requests being
 * sent (coordinated omission); the generator's own lag is in it too, alike for every target.
 * Evenly spaced arrivals are the gentlest pattern there is; real users arrive at random.
 *
 * Not autocannon's overallRate: it lets each connection send its share of a second back to back
 * at the top of every second, so a "300/s" run is 64 requests at once, then a closed loop, then a
 * pause; every target then queues its own CPU behind the whole wave and the figures measure the
 * wave, not a user.
 */
async function pacedLoad(options: LoadOptions & { readonly overallRate: number }): Promise<LoadResult> {
  const total = Math.max(1, Math.round(options.overallRate * options.durationSeconds));
  const intervalMs = 1000 / options.overallRate;
  const origin = new URL(options.url);
  const pool = new Pool(origin.origin, { connections: options.connections, pipelining: 1, headersTimeout: 30_000, bodyTimeout: 30_000 });
  const latencies: number[] = [];
  let ok = 0;
  let errors = 0;
  let maxSendLagMs = 0;
  const pending: Promise<void>[] = [];
  const send = async (index: number, dueAt: number): Promise<void> => {
    try {
      const response = await pool.request({
        path: origin.pathname,
        method: 'POST',
        headers: { ...options.headers, authorization: options.callers[index % options.callers.length] ?? '' },
        body: options.body,
      });
      const text = await response.body.text();
      if (response.statusCode === 200 && isHandoff(text)) {
        ok += 1;
        latencies.push(performance.now() - dueAt);
      } else errors += 1;
    } catch {
      errors += 1;
    }
  };
  const started = performance.now();
  try {
    for (let index = 0; index < total; ) {
      const now = performance.now();
      // Every request that is due by now goes out, so a late timer never lowers the rate.
      for (const due = requestsDueBy(now, started, intervalMs, total); index < due; index += 1) {
        const dueAt = started + index * intervalMs;
        maxSendLagMs = Math.max(maxSendLagMs, now - dueAt);
        pending.push(send(index, dueAt));
      }
      // Rounded up: Node's timers have whole milliseconds and truncate, which would wake too early for nothing.
      if (index < total) await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.ceil(started + index * intervalMs - performance.now()))));
    }
    await Promise.all(pending);
  } finally {
    await pool.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return { ok, errors, responses: ok + errors, seconds, perSecond: (ok + errors) / seconds, ...latencyFigures(latencies), maxSendLagMs };
}

function latencyFigures(latencies: readonly number[]): Pick<LoadResult, 'p50' | 'p99' | 'max'> {
  const sorted = Float64Array.from(latencies).sort();
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.length ? (sorted[sorted.length - 1] as number) : Number.NaN };
}

/** A body that carries a handoff and no error (the gateway's and the baselines' shape). */
export function isHandoff(body: unknown): boolean {
  const text = String(body);
  return text.includes('"sessionId":"') && !text.includes('"errors"');
}
