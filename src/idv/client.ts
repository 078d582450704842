import http from 'node:http';
import https from 'node:https';
import got, { RequestError, type Got, type Response } from 'got';
import { readDeeplinkAnswer } from './deeplink.js';
import {
  createsSession,
  IdvError,
  type CallContext,
  type CreatedDeeplink,
  type EphemeralDevice,
  type IdvPlatform,
  type IdvStep,
  type StartedSession,
  type UpstreamObserver,
} from './platform.js';

export interface IdvClientSettings {
  readonly baseUrl: string;
  readonly apiKey: string;
  /**
   * When set, the key is sent as "<scheme> <key>" on every call that carries it. Unset, the device
   * call sends it bare (the original guide) and the deeplink call as "ApiKey <key>" (its own docs).
   */
  readonly apiKeyScheme: string | null;
  readonly timeoutMs: number;
}

// What the platform may put in an Authorization header value we pass on verbatim: visible
// ASCII and inner spaces. Anything else would be refused by Node's header validation anyway.
const HEADER_VALUE = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;
const MAX_TOKEN_LENGTH = 8192;
const MAX_SESSION_ID_LENGTH = 256;
// The longest wait passed on to clients: a maintenance window fits, a misconfigured header's
// years (or 2099's date) do not.
const MAX_RETRY_AFTER_SECONDS = 3600;
// Every answer in the contract is a few hundred bytes; a larger one is not read to the end.
export const MAX_RESPONSE_BYTES = 1024 * 1024;

/**
 * The got instance every upstream call goes through; the benchmark's got baseline makes its calls
 * with it too, so that the two compare the same client.
 */
export function createUpstreamGot(options: { baseUrl: string; timeoutMs: number; agents: { http: http.Agent; https: https.Agent } }): Got {
  const instance = got.extend({
    prefixUrl: `${options.baseUrl}/`,
    agent: options.agents,
    timeout: { request: options.timeoutMs },
    retry: { limit: 0 },
    // A redirect is outside the contract, and following one could carry our key elsewhere.
    followRedirect: false,
    throwHttpErrors: false,
    responseType: 'text',
    headers: { accept: 'application/json', 'user-agent': 'idv-gateway' },
    // Mutable only until frozen below, once `cacheOptions` is emptied (a merge cannot empty it).
    mutableDefaults: true,
  });
  // got spreads `cacheOptions` into the options of every request it sends, ahead of 30 more
  // properties. On Node 20 (V8 11) an object literal of that shape allocates ~20 KB and leaves
  // most of it to survive young-generation collections until a full one: 100 calls left 3.4 MB
  // of such garbage, 1.8 MB with this (README, "Where the tail comes from"). Nothing is cached
  // here (no `cache` option), so the cache settings are unused and an empty object changes
  // nothing else.
  instance.defaults.options.cacheOptions = {};
  instance.defaults.options.freeze();
  Object.freeze(instance.defaults.handlers);
  return instance;
}

/**
 * The IDV platform over HTTP, per ../shared/idv-contract.md: one attempt per call, every failure
 * returned as an IdvError. Retries, the circuit breaker and failure logging live in
 * ResilientIdvPlatform (resilient-platform.ts), which wraps this class.
 */
export class IdvApiClient implements IdvPlatform {
  readonly #http: Got;
  readonly #deviceAuthorization: string;
  readonly #deeplinkAuthorization: string;
  readonly #agents: { http: http.Agent; https: https.Agent };

  readonly #timeoutMs: number;

  constructor(
    settings: IdvClientSettings,
    private readonly observer?: UpstreamObserver,
  ) {
    this.#timeoutMs = settings.timeoutMs;
    const headers = apiKeyHeaders(settings.apiKey, settings.apiKeyScheme);
    this.#deviceAuthorization = headers.device;
    this.#deeplinkAuthorization = headers.deeplink;
    this.#agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
    this.#http = createUpstreamGot({ baseUrl: settings.baseUrl, timeoutMs: settings.timeoutMs, agents: this.#agents });
  }

  async createEphemeralDevice(ttlSeconds: number, context: CallContext = {}): Promise<EphemeralDevice> {
    const body = await this.#post('device', 'api/device/ephemeral', {
      authorization: this.#deviceAuthorization,
      json: { ttl: ttlSeconds },
      context,
    });
    const token = isRecord(body) ? body.authorization : undefined;
    if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH || !HEADER_VALUE.test(token)) {
      throw new IdvError('invalid-response', 'device', 'ephemeral device answer has no usable "authorization" string');
    }
    return { authorization: token };
  }

  async startSession(
    request: { token: string; workflowId: string; externalUserId: string; locale?: string },
    context: CallContext = {},
  ): Promise<StartedSession> {
    const body = await this.#post('session', 'api/sessions', {
      authorization: request.token,
      searchParams: { workflowId: request.workflowId },
      json: { metadata: { externalUserId: request.externalUserId }, ...localeField(request.locale) },
      context,
    });
    // The platform's session object has `id`; the vendor's own load tests fall back to `sessionId`,
    // here whenever `id` is not a usable one (missing, empty, not a string).
    const id = isRecord(body) ? [body.id, body.sessionId].find(isUsableSessionId) : undefined;
    if (id === undefined) {
      throw new IdvError('invalid-response', 'session', 'session answer has no usable "id" or "sessionId" string');
    }
    return { id };
  }

  /** The one-call variant. Never to be retried, for the session step's reason: each call starts a session. */
  async createDeeplink(
    request: { workflowId: string; externalUserId: string; ttlSeconds: number; locale?: string },
    context: CallContext = {},
  ): Promise<CreatedDeeplink> {
    const body = await this.#post('deeplink', 'api/v1/deeplink', {
      authorization: this.#deeplinkAuthorization,
      searchParams: { workflowId: request.workflowId },
      json: { metadata: { externalUserId: request.externalUserId }, ttl: request.ttlSeconds, ...localeField(request.locale) },
      context,
    });
    const answer = readDeeplinkAnswer(body);
    if ('problem' in answer) throw new IdvError('invalid-response', 'deeplink', answer.problem);
    return answer;
  }

  /** Closes idle keep-alive sockets so the process can exit promptly. */
  close(): void {
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  async #post(
    step: IdvStep,
    path: string,
    options: { authorization: string; json: unknown; searchParams?: Record<string, string>; context: CallContext },
  ): Promise<unknown> {
    const started = performance.now();
    const { context } = options;
    // Checked below before sending; once sent, a kept session call is past the caller's reach.
    const signal = context.keepSentSession && createsSession(step) ? undefined : context.signal;
    // The per-call timeout, cut to what is left of the mutation's deadline.
    const leftMs = context.deadline === undefined ? Infinity : context.deadline - Date.now();
    const timeoutMs = Math.min(this.#timeoutMs, leftMs);
    if (context.signal?.aborted) throw new IdvError('unavailable', step, 'caller went away', { cause: 'cancelled', durationMs: 0, sent: false });
    if (timeoutMs <= 0) throw new IdvError('unavailable', step, 'no time left before the deadline', { cause: 'deadline', durationMs: 0, sent: false });
    const headers: Record<string, string> = { authorization: options.authorization };
    if (context.requestId) headers['x-request-id'] = context.requestId;
    let response: Response<string>;
    let tooLarge = false;
    try {
      const request = this.#http.post(path, {
        headers,
        json: options.json,
        searchParams: options.searchParams,
        signal,
        ...(timeoutMs < this.#timeoutMs ? { timeout: { request: timeoutMs } } : {}),
      });
      request.on('downloadProgress', ({ transferred }) => {
        if (transferred > MAX_RESPONSE_BYTES && !tooLarge) {
          tooLarge = true;
          request.cancel();
        }
      });
      response = await request;
    } catch (error) {
      const durationMs = elapsed(started);
      // A timeout cut to what was left of the deadline is the deadline's, not the platform's slowness.
      const cause = signal?.aborted ? 'cancelled' : timeoutMs < this.#timeoutMs && isTimeout(error) ? 'deadline' : undefined;
      const failure = tooLarge
        ? new IdvError('invalid-response', step, `answer larger than ${MAX_RESPONSE_BYTES} bytes`, { cause: 'too-large', durationMs })
        : cause
          ? new IdvError('unavailable', step, cause === 'deadline' ? 'deadline exceeded' : 'caller went away', { cause, durationMs })
          : networkFailure(step, error, durationMs);
      const { errorCode, cause: why } = failure.details;
      this.observer?.upstreamCall(step, { errorCode: errorCode ?? why ?? 'error' }, (performance.now() - started) / 1000, context);
      throw failure;
    }
    const durationMs = elapsed(started);
    const { statusCode } = response;
    this.observer?.upstreamCall(step, statusCode, (performance.now() - started) / 1000, context);
    if (statusCode >= 200 && statusCode < 300) {
      try {
        return JSON.parse(response.body) as unknown;
      } catch {
        throw new IdvError('invalid-response', step, `HTTP ${statusCode} with a body that is not JSON`, { status: statusCode, durationMs });
      }
    }
    throw httpFailure(step, statusCode, response.headers['retry-after'], durationMs);
  }
}

function isTimeout(error: unknown): boolean {
  return error instanceof RequestError && error.code === 'ETIMEDOUT';
}

function httpFailure(step: IdvStep, status: number, retryAfter: string | undefined, durationMs: number): IdvError {
  const details = { status, durationMs, retryAfterSeconds: parseRetryAfter(retryAfter) };
  if (status === 408 || status === 429 || status >= 500) {
    return new IdvError('unavailable', step, `HTTP ${status}`, details);
  }
  if (status === 401 || status === 403) {
    return new IdvError('rejected', step, `HTTP ${status}: the platform refused our credentials; check IDV_API_KEY, IDV_API_KEY_SCHEME and the key's permissions`, details);
  }
  if (step === 'session' && (status === 400 || status === 404)) {
    return new IdvError('rejected', step, `HTTP ${status}: the platform refused the session; check the workflow id in IDV_WORKFLOWS`, details);
  }
  if (step === 'deeplink' && (status === 404 || status === 405)) {
    return new IdvError('rejected', step, `HTTP ${status}: no one-call deeplink here (an older platform?) or an unknown workflow id; check IDV_FLOW and IDV_WORKFLOWS`, details);
  }
  if (status >= 400) return new IdvError('rejected', step, `HTTP ${status}`, details);
  return new IdvError('invalid-response', step, `HTTP ${status} is outside the contract`, details);
}

function networkFailure(step: IdvStep, error: unknown, durationMs: number): IdvError {
  if (error instanceof RequestError) {
    return new IdvError('unavailable', step, `${error.name} (${error.code})`, { errorCode: error.code, durationMs });
  }
  const name = error instanceof Error ? error.name : typeof error;
  return new IdvError('unavailable', step, `request failed (${name})`, { errorCode: name, durationMs });
}

/** Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3); read as at most an hour. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed), MAX_RETRY_AFTER_SECONDS);
  // An HTTP date names its weekday; without this, Date.parse would read "-5" as a year.
  const date = /^[A-Za-z]{3}, /.test(trimmed) ? Date.parse(trimmed) : Number.NaN;
  if (Number.isNaN(date)) return undefined;
  return Math.min(Math.max(0, Math.ceil((date - now) / 1000)), MAX_RETRY_AFTER_SECONDS);
}

/** `locale` is only sent when the caller gave one; the platform then keeps its own default. */
function localeField(locale: string | undefined): { locale?: string } {
  return locale === undefined ? {} : { locale };
}

/**
 * The Authorization values that carry the API key. The contract shows the device call with the
 * bare key (newer docs: "ApiKey <key>", hence the operator's scheme) and the deeplink call, which
 * only newer platforms have, with "ApiKey <key>".
 */
function apiKeyHeaders(apiKey: string, scheme: string | null): { device: string; deeplink: string } {
  return { device: scheme ? `${scheme} ${apiKey}` : apiKey, deeplink: `${scheme ?? 'ApiKey'} ${apiKey}` };
}

function isUsableSessionId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_SESSION_ID_LENGTH && HEADER_VALUE.test(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
