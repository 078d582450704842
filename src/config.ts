/**
 * Gateway configuration, read from the environment once at start-up.
 *
 * Every problem is reported as a ConfigError whose message names the variable and what is wrong
 * with it, so an operator can fix a deployment from one log line. Secret values are never echoed.
 */

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/**
 * How a verification is started upstream: `ephemeral` is the two-step flow of the original guide
 * (device, then session), `deeplink` the newer one-call variant, `auto` tries the one-call variant
 * and falls back to the two-step flow on platforms that lack it.
 */
export type IdvFlow = 'ephemeral' | 'deeplink' | 'auto';

export interface WorkflowCatalog {
  /** Workflow name → upstream workflow id, in the order the operator listed them. */
  readonly ids: ReadonlyMap<string, string>;
  readonly defaultName: string;
}

export interface IdvSettings {
  /** Where the gateway sends API calls; null means "start the embedded emulator" (development only). */
  readonly baseUrl: string | null;
  /** Origin (and optional path) that phones can reach, used in handoff URLs; null means "same as baseUrl". */
  readonly publicUrl: string | null;
  readonly apiKey: string | null;
  readonly apiKeyScheme: string | null;
  /** Null when no IDV_WORKFLOWS is set; only allowed with the emulator, which then supplies its own. */
  readonly workflows: WorkflowCatalog | null;
  readonly tokenTtlSeconds: number;
  readonly timeoutMs: number;
  readonly flow: IdvFlow;
  readonly resilience: ResilienceSettings;
  /** The platform's health probe (GET /api/health) behind /readyz: its timeout, and how long an answer is reused. */
  readonly healthTimeoutMs: number;
  readonly healthCacheMs: number;
}

/** How the gateway protects callers and itself from a slow, flaky or dead platform. */
export interface ResilienceSettings {
  /** Budget for one mutation's upstream work, queueing and retries included. */
  readonly deadlineMs: number;
  /** Extra attempts of the ephemeral-device call (the only call that is safe to repeat). */
  readonly deviceRetries: number;
  /** Consecutive temporary failures that open the circuit breaker. */
  readonly breakerFailures: number;
  readonly breakerCooldownMs: number;
  /** Mutations doing upstream work at once (the bulkhead), and how many may wait for a slot. */
  readonly maxConcurrency: number;
  readonly maxQueue: number;
  readonly queueWaitMs: number;
}

export type AuthKeySource =
  | { readonly kind: 'secret'; readonly secret: string }
  | { readonly kind: 'jwks'; readonly url: string }
  /** No key configured: development only, the server generates a secret and prints a token. */
  | { readonly kind: 'dev' };

export interface AuthSettings {
  readonly key: AuthKeySource;
  readonly issuer: string | null;
  readonly audience: string | null;
  readonly userClaim: string;
  readonly clockToleranceSeconds: number;
}

export interface HttpSettings {
  readonly bodyLimitBytes: number;
  /** Origins allowed by CORS: a list, '*' for any, or an empty list for none (same-origin and native apps only). */
  readonly corsOrigins: readonly string[] | '*';
  /** Connections the kernel may hold for the gateway to accept (listen(2)'s backlog, capped by net.core.somaxconn). */
  readonly listenBacklog: number;
  /** A new connection's first GraphQL request that waited longer than this inside the gateway is refused (503) at once; 0: never. */
  readonly maxAcceptWaitMs: number;
  /** How long a client may take to send one request, headers and body (408 after that). */
  readonly requestTimeoutMs: number;
}

export interface OperationLimits {
  readonly maxDepth: number;
  readonly maxAliases: number;
  readonly maxTokens: number;
  readonly maxDirectives: number;
  readonly maxCost: number;
}

export interface OperationsSettings {
  /** A separate port for /metrics (and /healthz, /readyz); null serves /metrics on the main port. */
  readonly metricsPort: number | null;
  /** How long in-flight requests may run on after SIGTERM/SIGINT before their connections are closed. */
  readonly shutdownGraceMs: number;
  /**
   * How long, after the signal, the gateway keeps accepting and answering (readiness 503, every
   * answer `Connection: close`) before it closes the listener and starts the grace period, so that
   * a load balancer stops routing to it and retires its pooled connections first.
   */
  readonly shutdownDelayMs: number;
}

/** Per-caller limit on new upstream sessions (issue 5); null when RATE_LIMIT_MAX=0 turns it off. */
export interface RateLimitSettings {
  readonly max: number;
  readonly windowSeconds: number;
}

/** Where idempotency records, in-flight locks and limits live: in the process, or on Redis when scaled out. */
export interface StateSettings {
  /** null: in-process state (one instance). The URL may hold a password: never log it. */
  readonly redisUrl: string | null;
  /** Prefix of every Redis key the gateway writes, so several deployments can share one Redis. */
  readonly keyPrefix: string;
}

export interface GatewayConfig {
  readonly production: boolean;
  readonly port: number;
  readonly host: string | null;
  readonly logLevel: LogLevel;
  /** Log callers' user ids in clear; by default only a stable pseudonym (hash) is logged. */
  readonly logUserIds: boolean;
  readonly http: HttpSettings;
  readonly limits: OperationLimits;
  readonly idv: IdvSettings;
  readonly auth: AuthSettings;
  readonly operations: OperationsSettings;
  readonly rateLimit: RateLimitSettings | null;
  readonly state: StateSettings;
}

type Env = Readonly<Record<string, string | undefined>>;

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const IDV_FLOWS: readonly IdvFlow[] = ['ephemeral', 'deeplink', 'auto'];
// 'test' is what jest sets, and behaves as development.
const NODE_ENVS: readonly string[] = ['production', 'development', 'test'];
// RFC 9110 token characters: what may stand as an auth scheme in a header.
const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Visible ASCII only: the key travels in a header, and whitespace at either end would be lost.
const HEADER_SAFE_SECRET = /^[\x21-\x7e]+$/;
const WORKFLOW_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const CLAIM_NAME = /^[^\s]{1,128}$/;
// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
const MIN_HS256_SECRET_BYTES = 32;

/** Reads a variable, treating an empty or all-blank value as unset (as most deploy tools write them). */
function read(env: Env, name: string): string | null {
  const value = env[name];
  if (value === undefined) return null;
  const trimmed = value.trim();
  return trimmed === '' ? null : trimmed;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = read(env, name)?.toLowerCase() ?? null;
  if (raw === null) return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(`${name} must be true or false (got "${clip(raw)}")`);
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === null) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max} (got "${clip(raw)}")`);
  }
  return Number(raw);
}

/** Parses an http(s) URL with no query, fragment or credentials, and drops a trailing slash. */
function baseUrl(env: Env, name: string): string | null {
  const raw = read(env, name);
  if (raw === null) return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be an absolute http(s) URL such as https://idv.example.com (got "${clip(withoutUserinfo(raw))}")`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${name} must use http or https (got "${url.protocol}")`);
  }
  if (url.username || url.password) {
    throw new ConfigError(`${name} must not contain credentials${name.startsWith('IDV_') ? '; put the API key in IDV_API_KEY' : ''}`);
  }
  if (url.search || url.hash) {
    throw new ConfigError(`${name} must not have a query string or fragment`);
  }
  return url.href.replace(/\/+$/, '');
}

/**
 * A URL's text for an error message, minus whatever stands between its scheme and the last '@':
 * a password, perhaps, and one that did not parse may hold '/', '#' or a newline too.
 */
function withoutUserinfo(raw: string): string {
  return raw.replace(/^([^:]*:\/*)[\s\S]*@/, '$1…@');
}

function clip(value: string): string {
  return value.length > 60 ? `${value.slice(0, 60)}…` : value;
}

/** Parses `name=id,name=id`; the default is IDV_DEFAULT_WORKFLOW or the first entry. */
export function parseWorkflows(list: string, defaultName: string | null): WorkflowCatalog {
  const ids = new Map<string, string>();
  for (const entry of list.split(',')) {
    const item = entry.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    const name = eq < 0 ? item : item.slice(0, eq).trim();
    const id = eq < 0 ? '' : item.slice(eq + 1).trim();
    if (!WORKFLOW_NAME.test(name)) {
      throw new ConfigError(
        `IDV_WORKFLOWS has an invalid name "${clip(name)}": use letters, digits, "_", "." or "-" (at most 64), as in "kyc=<workflow id>"`,
      );
    }
    // Workflow ids are opaque (the contract: never validate their shape); the list's comma is the
    // only character one cannot hold, and the query string encodes the rest.
    if (id === '') {
      throw new ConfigError(`IDV_WORKFLOWS entry "${clip(name)}" needs a workflow id after "=", as in "${name}=<workflow id>"`);
    }
    if (ids.has(name)) throw new ConfigError(`IDV_WORKFLOWS names "${name}" twice`);
    ids.set(name, id);
  }
  const first = ids.keys().next();
  if (first.done) throw new ConfigError('IDV_WORKFLOWS must list at least one workflow, as in "kyc=<workflow id>"');
  if (defaultName !== null && !ids.has(defaultName)) {
    throw new ConfigError(`IDV_DEFAULT_WORKFLOW "${clip(defaultName)}" is not one of IDV_WORKFLOWS (${[...ids.keys()].join(', ')})`);
  }
  return { ids, defaultName: defaultName ?? first.value };
}

function parseIdv(env: Env, production: boolean): IdvSettings {
  const base = baseUrl(env, 'IDV_BASE_URL');
  const publicUrl = baseUrl(env, 'IDV_PUBLIC_URL');
  const apiKey = read(env, 'IDV_API_KEY');
  const apiKeyScheme = read(env, 'IDV_API_KEY_SCHEME');
  const workflowList = read(env, 'IDV_WORKFLOWS');
  const defaultWorkflow = read(env, 'IDV_DEFAULT_WORKFLOW');

  if (base === null) {
    if (production) throw new ConfigError('IDV_BASE_URL is required when NODE_ENV=production (the embedded emulator is for development only)');
    if (publicUrl !== null) throw new ConfigError('IDV_PUBLIC_URL is set but IDV_BASE_URL is not; set both, or neither to use the embedded emulator');
  } else {
    if (apiKey === null) throw new ConfigError('IDV_API_KEY is required when IDV_BASE_URL is set');
    if (workflowList === null) throw new ConfigError('IDV_WORKFLOWS is required when IDV_BASE_URL is set, as in "kyc=<workflow id>"');
  }
  if (apiKey !== null && !HEADER_SAFE_SECRET.test(apiKey)) {
    throw new ConfigError('IDV_API_KEY must be printable ASCII without spaces (it is sent in a header)');
  }
  if (apiKeyScheme !== null && !HTTP_TOKEN.test(apiKeyScheme)) {
    throw new ConfigError(`IDV_API_KEY_SCHEME must be a single word such as "ApiKey" (got "${clip(apiKeyScheme)}")`);
  }
  if (workflowList === null && defaultWorkflow !== null) {
    throw new ConfigError('IDV_DEFAULT_WORKFLOW is set but IDV_WORKFLOWS is not');
  }
  return {
    baseUrl: base,
    publicUrl,
    apiKey,
    apiKeyScheme,
    workflows: workflowList === null ? null : parseWorkflows(workflowList, defaultWorkflow),
    tokenTtlSeconds: integer(env, 'IDV_TOKEN_TTL_SECONDS', 3600, 60, 86_400),
    timeoutMs: integer(env, 'IDV_TIMEOUT_MS', 5000, 100, 120_000),
    resilience: {
      deadlineMs: integer(env, 'IDV_DEADLINE_MS', 8000, 200, 300_000),
      deviceRetries: integer(env, 'IDV_DEVICE_RETRIES', 2, 0, 10),
      breakerFailures: integer(env, 'IDV_BREAKER_FAILURES', 5, 1, 10_000),
      breakerCooldownMs: integer(env, 'IDV_BREAKER_COOLDOWN_MS', 10_000, 100, 600_000),
      maxConcurrency: integer(env, 'IDV_MAX_CONCURRENCY', 128, 1, 100_000),
      maxQueue: integer(env, 'IDV_MAX_QUEUE', 512, 0, 1_000_000),
      queueWaitMs: integer(env, 'IDV_QUEUE_WAIT_MS', 1000, 0, 300_000),
    },
    flow: idvFlow(env),
    healthTimeoutMs: integer(env, 'IDV_HEALTH_TIMEOUT_MS', 1000, 100, 30_000),
    healthCacheMs: integer(env, 'IDV_HEALTH_CACHE_MS', 10_000, 0, 600_000),
  };
}

function idvFlow(env: Env): IdvFlow {
  const flow = (read(env, 'IDV_FLOW') ?? 'ephemeral').toLowerCase();
  if (!(IDV_FLOWS as readonly string[]).includes(flow)) {
    throw new ConfigError(`IDV_FLOW must be one of ${IDV_FLOWS.join(', ')} (got "${clip(flow)}")`);
  }
  return flow as IdvFlow;
}

function parseAuth(env: Env, production: boolean): AuthSettings {
  const secret = read(env, 'AUTH_JWT_SECRET');
  const jwksUrl = read(env, 'AUTH_JWKS_URL');
  let key: AuthKeySource;
  if (secret !== null && jwksUrl !== null) {
    throw new ConfigError('set either AUTH_JWT_SECRET (HS256) or AUTH_JWKS_URL (RS256/ES256), not both');
  } else if (secret !== null) {
    if (Buffer.byteLength(secret, 'utf8') < MIN_HS256_SECRET_BYTES) {
      throw new ConfigError(`AUTH_JWT_SECRET must be at least ${MIN_HS256_SECRET_BYTES} bytes long for HS256`);
    }
    key = { kind: 'secret', secret };
  } else if (jwksUrl !== null) {
    const url = baseUrl(env, 'AUTH_JWKS_URL');
    if (production && url?.startsWith('http:')) {
      throw new ConfigError('AUTH_JWKS_URL must use https when NODE_ENV=production');
    }
    key = { kind: 'jwks', url: url ?? jwksUrl };
  } else if (production) {
    throw new ConfigError('AUTH_JWT_SECRET or AUTH_JWKS_URL is required when NODE_ENV=production');
  } else {
    key = { kind: 'dev' };
  }
  const userClaim = read(env, 'AUTH_USER_CLAIM') ?? 'sub';
  if (!CLAIM_NAME.test(userClaim)) throw new ConfigError('AUTH_USER_CLAIM must be a claim name without spaces, such as "sub"');
  return {
    key,
    issuer: read(env, 'AUTH_ISSUER'),
    audience: read(env, 'AUTH_AUDIENCE'),
    userClaim,
    clockToleranceSeconds: integer(env, 'AUTH_CLOCK_TOLERANCE_SECONDS', 5, 0, 300),
  };
}

/** CORS_ORIGINS: `*`, or a comma-separated list of origins. Unset: any origin in development, none in production. */
function parseCorsOrigins(env: Env, production: boolean): readonly string[] | '*' {
  const raw = read(env, 'CORS_ORIGINS');
  if (raw === null) return production ? [] : '*';
  if (raw === '*') return '*';
  return raw
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => {
      let url: URL | null = null;
      try {
        url = new URL(entry);
      } catch {
        // reported below
      }
      if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.origin !== entry.replace(/\/$/, '')) {
        throw new ConfigError(`CORS_ORIGINS must list origins such as https://app.example.com (scheme and host, no path), or be "*" (got "${clip(entry)}")`);
      }
      return url.origin;
    });
}

function parseLimits(env: Env): OperationLimits {
  return {
    maxDepth: integer(env, 'GRAPHQL_MAX_DEPTH', 8, 2, 100),
    maxAliases: integer(env, 'GRAPHQL_MAX_ALIASES', 5, 0, 1000),
    maxTokens: integer(env, 'GRAPHQL_MAX_TOKENS', 1000, 50, 100_000),
    maxDirectives: integer(env, 'GRAPHQL_MAX_DIRECTIVES', 10, 0, 1000),
    maxCost: integer(env, 'GRAPHQL_MAX_COST', 1000, 10, 1_000_000),
  };
}

function parseOperations(env: Env, port: number): OperationsSettings {
  const metricsPort = read(env, 'METRICS_PORT') === null ? null : integer(env, 'METRICS_PORT', 0, 0, 65_535);
  if (metricsPort !== null && metricsPort !== 0 && metricsPort === port) {
    throw new ConfigError(`METRICS_PORT must differ from PORT (both are ${port}); unset it to serve /metrics on the main port`);
  }
  return {
    metricsPort,
    shutdownGraceMs: integer(env, 'SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    shutdownDelayMs: integer(env, 'SHUTDOWN_DELAY_MS', 0, 0, 600_000),
  };
}

function parseRateLimit(env: Env): RateLimitSettings | null {
  const max = integer(env, 'RATE_LIMIT_MAX', 5, 0, 1_000_000);
  const windowSeconds = integer(env, 'RATE_LIMIT_WINDOW_SECONDS', 600, 1, 86_400);
  return max === 0 ? null : { max, windowSeconds };
}

// Visible ASCII: a Redis key prefix such as "idv-gateway:" or "prod:idv:".
const KEY_PREFIX = /^[\x21-\x7e]{0,64}$/;

function parseState(env: Env): StateSettings {
  const raw = read(env, 'REDIS_URL');
  let redisUrl: string | null = null;
  if (raw !== null) {
    let url: URL | null = null;
    try {
      url = new URL(raw);
    } catch {
      // reported below
    }
    // Never echo the value: it may carry the Redis password.
    if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
      throw new ConfigError('REDIS_URL must be a redis:// or rediss:// URL such as redis://redis.internal:6379');
    }
    redisUrl = raw;
  }
  const keyPrefix = env.REDIS_KEY_PREFIX === undefined ? 'idv-gateway:' : env.REDIS_KEY_PREFIX.trim();
  if (!KEY_PREFIX.test(keyPrefix)) {
    throw new ConfigError(`REDIS_KEY_PREFIX must be at most 64 visible ASCII characters, such as "idv-gateway:" (got "${clip(keyPrefix)}")`);
  }
  return { redisUrl, keyPrefix };
}

export function parseConfig(env: Env): GatewayConfig {
  const nodeEnv = read(env, 'NODE_ENV');
  // Exactly these: a near miss ("Production", "prod", "staging") would otherwise run development
  // mode, with introspection, CORS for any origin and a dev token signed with AUTH_JWT_SECRET.
  if (nodeEnv !== null && !NODE_ENVS.includes(nodeEnv)) {
    throw new ConfigError(`NODE_ENV must be production, development or test, or unset for development (got "${clip(nodeEnv)}")`);
  }
  const production = nodeEnv === 'production';
  const logLevel = (read(env, 'LOG_LEVEL') ?? 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${clip(logLevel)}")`);
  }
  const host = read(env, 'HOST');
  const port = integer(env, 'PORT', 4000, 0, 65_535);
  return {
    production,
    port,
    host,
    logLevel: logLevel as LogLevel,
    logUserIds: boolean(env, 'LOG_USER_IDS', false),
    http: {
      bodyLimitBytes: integer(env, 'HTTP_BODY_LIMIT_BYTES', 64 * 1024, 1024, 10 * 1024 * 1024),
      listenBacklog: integer(env, 'HTTP_LISTEN_BACKLOG', 4096, 1, 65_535),
      maxAcceptWaitMs: integer(env, 'HTTP_MAX_ACCEPT_WAIT_MS', 2000, 0, 300_000),
      requestTimeoutMs: integer(env, 'HTTP_REQUEST_TIMEOUT_MS', 10_000, 1000, 300_000),
      corsOrigins: parseCorsOrigins(env, production),
    },
    limits: parseLimits(env),
    idv: parseIdv(env, production),
    auth: parseAuth(env, production),
    operations: parseOperations(env, port),
    rateLimit: parseRateLimit(env),
    state: parseState(env),
  };
}
