/**
 * The gateway's Prometheus metrics: one small API that the HTTP layer, the GraphQL layer, the IDV
 * data source and (once they land) the resilience, idempotency, rate-limit and Redis features call.
 *
 * Every instance has its own Registry (never prom-client's global one), so several gateways in one
 * process (the tests) do not share counters. Node's default process metrics are per process, so
 * they live in one registry shared by all instances and are appended to each scrape.
 *
 * Labels are bounded by construction: routes, steps, error codes and breaker states come from
 * fixed lists; anything else is folded into "other". Never a user id, token, URL or client-chosen
 * string.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { clientErrorCode } from './errors.js';
import type { IdvStep, UpstreamStatus } from './idv/platform.js';
import type { BreakerState } from './idv/resilient-platform.js';

const PREFIX = 'idv_gateway_';

/** Where a request went, as a label: the known routes, or "other". */
export type HttpRoute = 'graphql' | 'healthz' | 'readyz' | 'metrics' | 'demo' | 'other';

/** The circuit breaker's states, as ResilientIdvPlatform names them (an isolated breaker counts as open). */
const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half-open'];
// Label values in Prometheus' usual snake case.
const BREAKER_LABEL: Readonly<Record<BreakerState, string>> = { closed: 'closed', open: 'open', 'half-open': 'half_open' };

/** How a duplicate request was answered without a new upstream session (issue 5). */
export type ReplayKind = 'key' | 'in_flight';

// Handoffs take two upstream round trips; most real platforms answer in tens to hundreds of ms.
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

let processRegistry: Registry | undefined;

/** Node's default metrics (CPU, memory, event loop lag, GC, handles), collected once per process. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class GatewayMetrics {
  readonly #registry = new Registry();
  readonly #httpRequests: Counter<'route' | 'status'>;
  readonly #httpDuration: Histogram<'route'>;
  readonly #operations: Counter<'operation' | 'outcome'>;
  readonly #startVerification: Counter<'outcome' | 'workflow'>;
  readonly #startVerificationDuration: Histogram;
  readonly #upstreamDuration: Histogram<'step' | 'status'>;
  readonly #retries: Counter<'step'>;
  readonly #breakerState: Gauge<'state'>;
  readonly #rateLimited: Counter;
  readonly #replays: Counter<'kind'>;
  readonly #redisAvailable: Gauge;
  readonly #idvUp: Gauge;
  #bulkhead: (() => { active: number; queued: number }) | null = null;
  readonly #workflows: ReadonlySet<string>;

  /** `workflows`: the configured workflow names, the only values the `workflow` label takes besides "unknown". */
  constructor(options: { workflows: Iterable<string> }) {
    this.#workflows = new Set(options.workflows);
    const registers = [this.#registry];
    this.#httpRequests = new Counter({
      name: `${PREFIX}http_requests_total`,
      help: 'HTTP requests answered, by route and status code ("aborted" when the client left first).',
      labelNames: ['route', 'status'],
      registers,
    });
    this.#httpDuration = new Histogram({
      name: `${PREFIX}http_request_duration_seconds`,
      help: 'Time from the request to the end of the answer, by route.',
      labelNames: ['route'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#operations = new Counter({
      name: `${PREFIX}graphql_operations_total`,
      help: 'GraphQL operations by root field ("invalid" when none was resolved, "other" for several or unknown fields) and outcome code ("OK" or the first error code).',
      labelNames: ['operation', 'outcome'],
      registers,
    });
    this.#startVerification = new Counter({
      name: `${PREFIX}start_verification_total`,
      help: 'startVerification results by outcome code and configured workflow name ("unknown" for a name not configured).',
      labelNames: ['outcome', 'workflow'],
      registers,
    });
    this.#startVerificationDuration = new Histogram({
      name: `${PREFIX}start_verification_duration_seconds`,
      help: 'Duration of operations that ran startVerification, whatever their outcome, from the request\'s arrival (its token check included) to its answer.',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#upstreamDuration = new Histogram({
      name: `${PREFIX}upstream_request_duration_seconds`,
      help: 'IDV platform calls (each attempt) by step and HTTP status, or "timeout", "deadline", "refused", "reset", "aborted", "too_large" or "error" when no (whole) answer came.',
      labelNames: ['step', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#retries = new Counter({
      name: `${PREFIX}upstream_retries_total`,
      help: 'Upstream calls repeated by the gateway, by step.',
      labelNames: ['step'],
      registers,
    });
    this.#breakerState = new Gauge({
      name: `${PREFIX}circuit_breaker_state`,
      help: 'The IDV circuit breaker: 1 for the state it is in (closed, open, half_open), 0 for the others.',
      labelNames: ['state'],
      registers,
    });
    this.#rateLimited = new Counter({
      name: `${PREFIX}rate_limited_total`,
      help: 'startVerification calls refused by the per-caller rate limit (RATE_LIMITED).',
      registers,
    });
    this.#replays = new Counter({
      name: `${PREFIX}idempotent_replays_total`,
      help: 'startVerification answers given without a new upstream session: "key" for an Idempotency key replay, "in_flight" for joining an identical request in flight.',
      labelNames: ['kind'],
      registers,
    });
    this.#redisAvailable = new Gauge({
      name: `${PREFIX}redis_available`,
      help: '1 when the shared state store (Redis) answers; 0 when it does not, or when REDIS_URL is not set.',
      registers,
    });
    this.#idvUp = new Gauge({
      name: `${PREFIX}idv_platform_up`,
      help: "1 when the IDV platform's health probe (GET /api/health, run on /readyz) last answered 2xx, else 0.",
      registers,
    });
    // The bulkhead's load, read when scraped.
    const load = () => this.#bulkhead?.() ?? { active: 0, queued: 0 };
    new Gauge({
      name: `${PREFIX}upstream_active`,
      help: "startVerification mutations doing upstream work now (the bulkhead's occupied slots, IDV_MAX_CONCURRENCY at most).",
      registers,
      collect() {
        this.set(load().active);
      },
    });
    new Gauge({
      name: `${PREFIX}upstream_queued`,
      help: 'startVerification mutations waiting for a bulkhead slot (IDV_MAX_QUEUE at most).',
      registers,
      collect() {
        this.set(load().queued);
      },
    });
    // Series that exist before their first event, so dashboards and alerts see 0 rather than nothing.
    for (const state of BREAKER_STATES) this.#breakerState.set({ state: BREAKER_LABEL[state] }, 0);
    for (const kind of ['key', 'in_flight'] as const) this.#replays.inc({ kind }, 0);
    for (const step of ['device', 'session', 'deeplink'] as const) this.#retries.inc({ step }, 0);
  }

  httpRequest(route: HttpRoute, status: number | 'aborted', seconds: number): void {
    this.#httpRequests.inc({ route, status: String(status) });
    this.#httpDuration.observe({ route }, seconds);
  }

  /** `operation`: a root field name of the schema, "introspection", "other" or "invalid" (see server.ts). */
  graphqlOperation(operation: string, outcome: string | null): void {
    this.#operations.inc({ operation, outcome: outcomeLabel(outcome) });
  }

  /** `workflow` is the name the caller asked for (or the default); names not configured become "unknown". */
  startVerification(outcome: string | null, workflow: string | null, seconds: number): void {
    const known = workflow !== null && this.#workflows.has(workflow) ? workflow : 'unknown';
    this.#startVerification.inc({ outcome: outcomeLabel(outcome), workflow: known });
    this.#startVerificationDuration.observe(seconds);
  }

  /** One upstream call (one attempt, when retried), however it ended. */
  upstreamCall(step: IdvStep, status: UpstreamStatus, seconds: number): void {
    this.#upstreamDuration.observe({ step, status: upstreamStatusLabel(status) }, seconds);
  }

  /** A failed upstream attempt that is retried (ResilientIdvPlatform); counted per repeat, not per first attempt. */
  retry(step: IdvStep): void {
    this.#retries.inc({ step });
  }

  /** The circuit breaker entered `state` (ResilientIdvPlatform). */
  breakerState(state: BreakerState): void {
    for (const each of BREAKER_STATES) this.#breakerState.set({ state: BREAKER_LABEL[each] }, each === state ? 1 : 0);
  }

  /** Where the bulkhead's load is read from at each scrape (issue 4's UpstreamGuard). */
  observeBulkhead(read: () => { active: number; queued: number }): void {
    this.#bulkhead = read;
  }

  /** A startVerification refused by the per-caller limit (issue 5). */
  rateLimited(): void {
    this.#rateLimited.inc();
  }

  /** A handoff given again instead of a new upstream session (issue 5). */
  idempotentReplay(kind: ReplayKind = 'key'): void {
    this.#replays.inc({ kind });
  }

  /** Whether the Redis store answers (issue 5); call on every change. */
  redisAvailable(up: boolean): void {
    this.#redisAvailable.set(up ? 1 : 0);
  }

  idvPlatformUp(up: boolean): void {
    this.#idvUp.set(up ? 1 : 0);
  }

  readonly contentType = this.#registry.contentType;

  /** The Prometheus text exposition: this instance's metrics, then the process's. */
  async render(): Promise<string> {
    const own = await this.#registry.metrics();
    const process = await processMetrics().metrics();
    return `${own}\n${process}`;
  }
}

/** The outcome of an operation whose caller went away before its answer. */
export const CANCELLED = 'CANCELLED';

/** Outcome codes, bounded: "OK", "CANCELLED" (the caller went away), or an error code the client may see (anything else is INTERNAL_SERVER_ERROR). */
function outcomeLabel(code: string | null): string {
  return code === null ? 'OK' : code === CANCELLED ? CANCELLED : clientErrorCode(code);
}

const NETWORK_STATUS: Readonly<Record<string, string>> = {
  ETIMEDOUT: 'timeout',
  ECONNREFUSED: 'refused',
  ECONNRESET: 'reset',
  EPIPE: 'reset',
  ERR_ABORTED: 'aborted',
  AbortError: 'aborted',
  // Set by IdvApiClient when the gateway itself stopped the call (see IdvError's `cause`).
  deadline: 'deadline',
  cancelled: 'aborted',
  'too-large': 'too_large',
};

function upstreamStatusLabel(status: UpstreamStatus): string {
  if (typeof status === 'number') return Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : 'other';
  return NETWORK_STATUS[status.errorCode] ?? 'error';
}
