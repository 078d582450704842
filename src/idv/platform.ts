/**
 * What the gateway needs from the IDV platform, independent of how it is reached.
 * The real implementation is IdvApiClient (HTTP, see client.ts); tests drive it against the
 * embedded emulator over real HTTP rather than swapping this interface out.
 */

export type IdvStep = 'device' | 'session' | 'deeplink';

export interface EphemeralDevice {
  /** A whole Authorization header value for the session call (e.g. "Token tr-…"): opaque, used verbatim. */
  readonly authorization: string;
}

export interface StartedSession {
  readonly id: string;
}

/** The one-call variant's answer, checked against the contract. */
export interface CreatedDeeplink {
  /** The platform's mobile URL, exactly as returned: what the IDV SDKs take. */
  readonly url: string;
  /** The `sessionId` query parameter of `url`. */
  readonly sessionId: string;
  readonly expiresAt: Date;
}

export interface CallContext {
  /** Aborts the upstream call when every caller waiting on it has gone away. */
  readonly signal?: AbortSignal;
  /**
   * A call that creates a session, once sent, is no longer aborted by `signal` (only the deadline
   * ends it): the start carries an idempotency key, and its handoff must be recorded for the retry.
   */
  readonly keepSentSession?: boolean;
  /** When the mutation's budget ends (epoch ms); each call's timeout is cut to fit, and no call starts after it. */
  readonly deadline?: number;
  /** Correlates the upstream's logs with ours. */
  readonly requestId?: string;
  /** The request's list of upstream calls (its operation log line): the observer appends each call here. */
  readonly upstreamCalls?: UpstreamCall[];
}

/** One upstream call as the operation log line lists it. */
export interface UpstreamCall {
  readonly step: IdvStep;
  /** The HTTP status, or the network error code when there was no answer. */
  readonly status: number | string;
  readonly ms: number;
}

/** What an upstream call ended with: the HTTP status, or why there was none (a network error code). */
export type UpstreamStatus = number | { readonly errorCode: string };

/** Told about every upstream call as it ends, successful or not (metrics, the per-request log). */
export interface UpstreamObserver {
  upstreamCall(step: IdvStep, status: UpstreamStatus, seconds: number, context: CallContext): void;
}

export interface IdvPlatform {
  createEphemeralDevice(ttlSeconds: number, context?: CallContext): Promise<EphemeralDevice>;
  startSession(
    request: { token: string; workflowId: string; externalUserId: string; locale?: string },
    context?: CallContext,
  ): Promise<StartedSession>;
  /** The newer one-call variant: device, session and handoff URL at once (`deeplink:write`). */
  createDeeplink(
    request: { workflowId: string; externalUserId: string; ttlSeconds: number; locale?: string },
    context?: CallContext,
  ): Promise<CreatedDeeplink>;
}

/**
 * Why an upstream call failed, modelled as data rather than as an exception's message:
 * - `unavailable`: temporary (timeout, connection failure, 429, 5xx); the same request may work later.
 * - `rejected`: the platform refused our request (4xx); retrying will not help until config changes.
 * - `invalid-response`: a 2xx (or other) answer outside the contract (HTML, missing fields).
 * The message is for logs only and never contains the API key, a token or a URL.
 */
export type IdvFailureKind = 'unavailable' | 'rejected' | 'invalid-response';

/** Where a failure arose: an upstream call, or the gateway's own guard in front of them. */
export type FailurePoint = IdvStep | 'bulkhead';

/** Network errors after which the request provably never reached the platform (refused, unresolved, unreachable). */
export const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Whether the platform may have created a session before this failure: only a session or
 * deeplink call that may have been sent and was not plainly refused. The per-caller limit counts
 * such attempts, and gives back those that cannot have cost a session.
 */
export function mayHaveCreatedSession(error: IdvError): boolean {
  if (!createsSession(error.step)) return false;
  if (error.kind === 'rejected') return false;
  const { cause, errorCode, status, sent } = error.details;
  if (sent === false || cause === 'circuit-open' || cause === 'retry-after' || status === 429) return false;
  return errorCode === undefined || !NEVER_SENT.has(errorCode);
}

/** The calls that create a (paid) session on the platform. */
export function createsSession(step: FailurePoint): boolean {
  return step === 'session' || step === 'deeplink';
}

export class IdvError extends Error {
  override name = 'IdvError';
  constructor(
    readonly kind: IdvFailureKind,
    readonly step: FailurePoint,
    message: string,
    readonly details: {
      readonly status?: number;
      /** Network error code (ECONNREFUSED, ETIMEDOUT, …) when there was no HTTP answer. */
      readonly errorCode?: string;
      /** From a Retry-After header, when the platform sent one; or what is left of the wait it asked for. */
      readonly retryAfterSeconds?: number;
      readonly durationMs?: number;
      /** Why there was no answer, when the gateway itself stopped waiting. */
      readonly cause?: 'deadline' | 'cancelled' | 'circuit-open' | 'retry-after' | 'queue-full' | 'queue-timeout' | 'too-large';
      /** False when the call never left the gateway (no time left, or the caller gone, before sending). */
      readonly sent?: false;
      /** Attempts made, when the call was retried. */
      readonly attempts?: number;
    } = {},
  ) {
    super(message);
  }
}
