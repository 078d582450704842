/**
 * The IDV platform's own probe, `GET {IDV}/api/health`, for /readyz and the idv_platform_up metric.
 *
 * Run on demand, not on a timer: only when someone asks (a readiness probe) and the last answer is
 * older than `maxAgeMs`, so a fleet of instances adds at most one cheap call per instance per
 * period, and an idle gateway (or a test counting upstream calls) sees none. The answer is served
 * from the cache while a fresh probe runs in the background, so /readyz never waits on a slow
 * platform; only the very first call waits (up to `timeoutMs`) since it has nothing to show.
 * No API key is sent: the health path needs none and must not receive one.
 */
import http from 'node:http';
import https from 'node:https';
import got, { RequestError } from 'got';
import type { Logger } from 'pino';
import type { DependencyReport } from '../health.js';

export interface IdvProbeSettings {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly maxAgeMs: number;
}

export interface IdvProbeResult extends DependencyReport {
  readonly state: 'up' | 'down' | 'unknown';
  /** The HTTP status, when the platform answered. */
  readonly httpStatus?: number;
  /** Why it is down, without any URL or body: "HTTP 503", "ETIMEDOUT", "ECONNREFUSED"… */
  readonly reason?: string;
  readonly latencyMs?: number;
  readonly checkedAt?: string;
}

export class IdvHealthProbe {
  #last: IdvProbeResult = { state: 'unknown' };
  #lastAt = Number.NEGATIVE_INFINITY;
  #inFlight: Promise<IdvProbeResult> | null = null;
  #closed = false;
  // No keep-alive: a probe every few seconds is no reason to hold a socket open to the platform.
  readonly #agents = { http: new http.Agent({ keepAlive: false }), https: new https.Agent({ keepAlive: false }) };

  constructor(
    private readonly settings: IdvProbeSettings,
    private readonly logger: Logger,
    private readonly onChange: (up: boolean) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  /** The latest known state; starts a fresh probe when it is stale, and waits for it only when nothing is known yet. */
  async status(): Promise<IdvProbeResult> {
    // Once closed, the METRICS_PORT listener still answers /readyz until the very end of a shutdown:
    // it gets the last answer, since a new probe would report on the shutdown, not the platform.
    if (this.#closed || this.now() - this.#lastAt < this.settings.maxAgeMs) return this.#last;
    const fresh = this.#probe();
    return this.#last.state === 'unknown' ? fresh : this.#last;
  }

  close(): void {
    this.#closed = true;
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  #probe(): Promise<IdvProbeResult> {
    this.#inFlight ??= this.#run().finally(() => {
      this.#inFlight = null;
    });
    return this.#inFlight;
  }

  async #run(): Promise<IdvProbeResult> {
    const started = performance.now();
    let result: IdvProbeResult;
    try {
      const response = await got.get(`${this.settings.baseUrl}/api/health`, {
        agent: this.#agents,
        timeout: { request: this.settings.timeoutMs },
        retry: { limit: 0 },
        followRedirect: false,
        throwHttpErrors: false,
        headers: { 'user-agent': 'idv-gateway' },
      });
      const up = response.statusCode >= 200 && response.statusCode < 300;
      result = {
        state: up ? 'up' : 'down',
        httpStatus: response.statusCode,
        ...(up ? {} : { reason: `HTTP ${response.statusCode}` }),
        ...timing(started),
      };
    } catch (error) {
      const reason = error instanceof RequestError ? error.code : 'error';
      result = { state: 'down', reason, ...timing(started) };
    }
    // close() destroys the agents under a probe in flight, which then fails (ECONNRESET): that is
    // the gateway stopping, not the platform going down, so it changes no state, log or metric.
    if (this.#closed) return this.#last;
    this.#record(result);
    return result;
  }

  #record(result: IdvProbeResult): void {
    const before = this.#last.state;
    this.#last = result;
    this.#lastAt = this.now();
    if (before === result.state) return;
    this.onChange(result.state === 'up');
    // Logged on change only, so a long outage is one line, not one per probe.
    if (result.state === 'up') this.logger.info({ idvHealth: 'up' }, 'IDV platform health probe: up');
    else this.logger.warn({ idvHealth: 'down', reason: result.reason }, 'IDV platform health probe: down');
  }
}

function timing(started: number): { latencyMs: number; checkedAt: string } {
  return { latencyMs: Math.round(performance.now() - started), checkedAt: new Date().toISOString() };
}
