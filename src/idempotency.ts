/**
 * Duplicate protection around the "start verification" use case (issue 5). Every upstream
 * session costs money, and the platform has no idempotency of its own, so here:
 * - an idempotency key: the same caller, key and parameters get the same handoff back while it is
 *   valid; the same key with other parameters is refused; a failure leaves the key free;
 * - single flight: concurrent requests for the same thing (same key, or without a key the same
 *   caller, workflow and locale) make one upstream call and all get its outcome;
 * - a per-caller limit on the new upstream sessions: replays and joined double taps are free.
 *
 * Two layers: an in-process map joins concurrent requests on this instance without any I/O, and
 * its one leader goes through the shared state (SharedFlights, records, limits), which is Redis
 * across instances or in-process with one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { GraphQLError } from 'graphql';
import type { Logger } from 'pino';
import type { Caller } from './auth.js';
import { ErrorCode, gatewayError } from './errors.js';
import type { CallContext } from './idv/platform.js';
import type { FlightCodec, SharedFlights } from './state/flight.js';
import { Sealer, stateDigest } from './state/seal.js';
import type { SharedState } from './state/store.js';
import type { FlowStatus } from './flows.js';
import { costsNoSession, type IssuedHandoff, type ResolvedVerification, type VerificationInput, type VerificationService } from './verification.js';

export interface StartedVerification extends IssuedHandoff {
  /** True when this is a handoff that already existed (a replay, or a request that joined one in flight). */
  readonly reused: boolean;
}

/** What the guard reports, for metrics: refusals by the limit, and answers given without a new session. */
export interface DuplicateEvents {
  rateLimited(): void;
  /** `key`: an idempotency-key replay; `in_flight`: a request that joined an identical one in flight. */
  replayed(kind: 'key' | 'in_flight'): void;
}

const NO_EVENTS: DuplicateEvents = { rateLimited: () => {}, replayed: () => {} };

export interface GuardedInput extends VerificationInput {
  readonly idempotencyKey?: string | null;
}

// 1..255 printable ASCII characters (space included): what Stripe-style keys (UUIDs, ULIDs,
// "order-123:attempt") are made of, and safe to hash and to show in a message.
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;

/** What an idempotency record holds: a digest of the parameters, and the handoff to give back, sealed. */
interface StoredRecord {
  readonly params: string;
  readonly handoff: string;
}

export class GuardedVerification {
  readonly #inFlight = new Map<string, { readonly params: string; readonly result: Promise<StartedVerification>; readonly callers: Callers }>();

  constructor(
    private readonly verification: VerificationService,
    private readonly state: SharedState,
    private readonly flights: SharedFlights,
    /** Keys state names and seals (seal.ts's stateSecret). */
    private readonly secret: Uint8Array,
    private readonly logger: Logger,
    private readonly events: DuplicateEvents = NO_EVENTS,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Waits (at most `timeoutMs`) for the starts in flight on this instance, for shutdown: a keyed
   * start whose caller went away (its session call kept, see start) finishes and is recorded
   * before the upstream client and the state are closed under it.
   */
  async settle(timeoutMs: number): Promise<void> {
    if (this.#inFlight.size === 0) return;
    // An unref'd timer, as SharedFlights.settle's: it keeps nothing waiting once they are done.
    await Promise.race([Promise.allSettled([...this.#inFlight.values()].map((flight) => flight.result)), sleep(timeoutMs, undefined, { ref: false })]);
  }

  get workflowNames(): string[] {
    return this.verification.workflowNames;
  }

  get flowStatus(): FlowStatus {
    return this.verification.flowStatus;
  }

  async start(caller: Caller, input: GuardedInput, context: CallContext = {}): Promise<StartedVerification> {
    const resolved = this.verification.resolve(input);
    const key = idempotencyKey(input.idempotencyKey);
    const params = stateDigest(this.secret, 'params', resolved.workflow, resolved.locale ?? '');
    // Scoped to the caller: the user id is part of every flight and record name.
    const flight = key === null ? stateDigest(this.secret, 'tap', caller.userId, params) : stateDigest(this.secret, 'key', caller.userId, key);

    let joined = this.#inFlight.get(flight);
    // One whose callers have all gone is being stopped, yet may still succeed (a kept session
    // call, a follower of another instance's leader): its handoff is this caller's too, its
    // failure is not. On a failure this one starts afresh (or joins whoever did meanwhile).
    while (joined?.callers.signal.aborted) {
      const stopped = joined;
      this.logger.debug({ requestId: context.requestId, idempotencyKey: key !== null }, 'waiting on an identical start whose callers all went away');
      const shared = await untilLeft(stopped.result.then((started) => started, () => null), context.signal);
      if (shared) {
        if (stopped.params !== params) throw keyReused();
        this.events.replayed('in_flight');
        return { ...shared, reused: true };
      }
      joined = this.#inFlight.get(flight);
    }
    if (joined) {
      if (joined.params !== params) throw keyReused();
      joined.callers.join(context.signal);
      this.logger.debug({ requestId: context.requestId, idempotencyKey: key !== null }, 'joined an identical start in flight on this instance');
      const shared = await joined.result;
      this.events.replayed('in_flight');
      return { ...shared, reused: true };
    }
    // The upstream work stops when every caller waiting on it has gone away, not when the first
    // one does: the others that joined it still want the answer. With a key, a session call once
    // sent is not stopped (the deadline still ends it): an app whose answer was lost (a dropped
    // connection, its own timeout) retries with the same key, and must get the session the first
    // attempt may have started, recorded under the key, not a second one. Before it is sent,
    // nothing can exist yet, and the work stops as for any other start.
    const callers = new Callers((waiting) => this.logger.debug({ waiting }, 'a caller waiting on a start went away'));
    callers.join(context.signal);
    const upstream: CallContext = { ...context, signal: callers.signal, keepSentSession: key !== null };
    // Sealed with the state secret and what only this caller's request carries (see seal.ts); made once, and only when something is stored or read.
    let sealer: Sealer | undefined;
    const seal = () => (sealer ??= key === null ? new Sealer(this.secret, 'tap', caller.userId, params) : new Sealer(this.secret, 'key', caller.userId, key));
    const result = this.#startShared(caller, resolved, key === null ? null : `idem:${flight}`, flight, params, seal, upstream).finally(() =>
      this.#inFlight.delete(flight),
    );
    this.#inFlight.set(flight, { params, result, callers });
    return result;
  }

  async #startShared(
    caller: Caller,
    resolved: ResolvedVerification,
    record: string | null,
    flight: string,
    params: string,
    seal: () => Sealer,
    context: CallContext,
  ): Promise<StartedVerification> {
    // A replay needs no lease: read first, the common case for an app's retry.
    const replay = record === null ? null : await this.#replay(record, params, seal());
    if (replay) {
      this.events.replayed('key');
      return replay;
    }
    const follow = () => this.logger.debug({ requestId: context.requestId, idempotencyKey: record !== null }, 'waiting for an identical start in flight on another instance');
    const { value, led } = await this.flights.run(
      flight,
      follow,
      async (): Promise<StartedVerification> => {
        // Again under the lease: another instance may have finished between the read and the claim.
        const late = record === null ? null : await this.#replay(record, params, seal());
        if (late) {
          this.events.replayed('key');
          return late;
        }
        const decision = await this.state.consume(stateDigest(this.secret, 'caller', caller.userId));
        if (!decision.allowed) {
          this.events.rateLimited();
          throw rateLimited(decision.retryAfterMs);
        }
        const handoff = await this.verification.start(caller, resolved, context).catch(async (error: unknown) => {
          // The limit counts starts that may have cost a session; one refused before it is given back.
          if (costsNoSession(error)) await this.#refund(decision.refund, context);
          throw error;
        });
        const ttlMs = handoff.expiresAt.getTime() - this.now();
        if (record !== null && ttlMs > 0) {
          const stored: StoredRecord = { params, handoff: sealedCodec(seal, params).encode({ ...handoff, reused: true }) };
          await this.state.write(record, JSON.stringify(stored), ttlMs);
        }
        return { ...handoff, reused: false };
      },
      sealedCodec(seal, params),
      // Stopped because every caller here went away: no outcome for followers on other instances,
      // who still want one; they take over once the lease is dropped. Nor for RATE_LIMITED: it is
      // decided before any upstream call, a follower taking over is told the same by its own check
      // of the limit (the lease and a few Redis commands), and a result key per refusal (60 s of
      // Redis memory each, at whatever rate a caller over their limit keeps sending) would let one
      // caller fill the shared Redis.
      (error) => context.signal?.aborted === true || isRateLimited(error),
    );
    if (led) return value;
    this.events.replayed('in_flight');
    return { ...value, reused: true };
  }

  /**
   * A record this gateway cannot read (sealed before IDV_API_KEY was rotated, or written by
   * someone else) is as if absent: the key starts afresh instead of failing until it expires.
   */
  #unreadable(error: unknown): null {
    this.logger.warn({ err: { message: (error as Error)?.message } }, 'an idempotency record could not be read; treated as absent');
    return null;
  }

  /** Gives back a limit point; a failure to do so costs the caller that point, never their answer. */
  async #refund(refund: () => Promise<void>, context: CallContext): Promise<void> {
    try {
      await refund();
    } catch (error) {
      this.logger.warn({ requestId: context.requestId, err: { name: (error as Error)?.name, message: (error as Error)?.message } }, 'could not give back a rate-limit point');
    }
  }

  /** The recorded handoff for this key, if it is still valid; KEY_REUSED if it was for other parameters. */
  async #replay(record: string, params: string, sealer: Sealer): Promise<StartedVerification | null> {
    const [raw] = await this.state.read([record]);
    if (raw == null) return null;
    let stored: StoredRecord;
    try {
      stored = parseStored<StoredRecord>(raw);
      if (typeof stored?.params !== 'string' || typeof stored.handoff !== 'string') throw new Error('a stored idempotency record is malformed');
    } catch (error) {
      return this.#unreadable(error);
    }
    if (stored.params !== params) throw keyReused();
    let handoff: StartedVerification;
    try {
      // The seal holds the parameters too: a record whose outer digest was swapped does not open.
      handoff = sealedCodec(() => sealer, params).decode(stored.handoff);
    } catch (error) {
      return this.#unreadable(error);
    }
    if (handoff.expiresAt.getTime() <= this.now()) return null;
    return { ...handoff, reused: true };
  }
}

/** An abort signal that fires once every caller who joined has gone away (never, if one cannot). */
class Callers {
  readonly #controller = new AbortController();
  #waiting = 0;
  #unbounded = false;

  constructor(private readonly onLeave: (waiting: number) => void) {}

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  join(signal: AbortSignal | undefined): void {
    if (signal === undefined) {
      this.#unbounded = true;
      return;
    }
    if (signal.aborted) {
      this.#settle(signal);
      return;
    }
    this.#waiting += 1;
    signal.addEventListener(
      'abort',
      () => {
        this.#waiting -= 1;
        this.onLeave(this.#waiting);
        this.#settle(signal);
      },
      { once: true },
    );
  }

  #settle(signal: AbortSignal): void {
    if (this.#waiting === 0 && !this.#unbounded) this.#controller.abort(signal.reason);
  }
}

/** `outcome`, unless `signal` aborts first (the caller went away): then a rejection, at once. */
async function untilLeft<T>(outcome: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return outcome;
  let onAbort = () => {};
  const left = new Promise<never>((_, reject) => {
    onAbort = () => reject(gatewayError(ErrorCode.IDV_UNAVAILABLE, 'The request was cancelled.'));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([outcome, left]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

function idempotencyKey(value: string | null | undefined): string | null {
  if (value == null) return null;
  if (!IDEMPOTENCY_KEY.test(value)) {
    throw gatewayError(
      ErrorCode.BAD_USER_INPUT,
      'Invalid idempotencyKey. Use 1 to 255 printable ASCII characters, such as a UUID made once per "Start verification" tap.',
      { extensions: { field: 'idempotencyKey' } },
    );
  }
  return value;
}

function keyReused() {
  return gatewayError(
    ErrorCode.BAD_USER_INPUT,
    'This idempotencyKey was already used with other parameters (workflow or locale). Use a new key for a different request.',
    { extensions: { field: 'idempotencyKey', reason: 'IDEMPOTENCY_KEY_REUSED' } },
  );
}

function isRateLimited(error: unknown): boolean {
  return error instanceof GraphQLError && error.extensions.code === ErrorCode.RATE_LIMITED;
}

function rateLimited(retryAfterMs: number) {
  return gatewayError(ErrorCode.RATE_LIMITED, 'Too many verifications were started for this account. Try again later.', {
    extensions: { retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)) },
  });
}

/**
 * A stored record; a corrupt one is reported without quoting it: JSON.parse's message would, and
 * the record holds handoff URLs, which must not reach a log line.
 */
function parseStored<T>(stored: string): T {
  try {
    return JSON.parse(stored) as T;
  } catch {
    throw new Error('a stored idempotency record is not valid JSON');
  }
}

/**
 * A handoff as single flight shares it with other instances: sealed, like a stored record, with
 * the parameters it was started with. A keyed flight is named by the key alone, so a follower on
 * another instance may have sent the same key with other parameters: it gets KEY_REUSED, as on
 * one instance, not a handoff for a workflow it did not ask for.
 */
function sealedCodec(seal: () => Sealer, params: string): FlightCodec<StartedVerification> {
  return {
    encode: (started) => seal().seal(JSON.stringify({ params, started: encode(started) })),
    decode: (stored) => {
      const shared = parseStored<{ params: string; started: string }>(seal().open(stored));
      if (shared.params !== params) throw keyReused();
      return decode(shared.started);
    },
  };
}

function encode(started: StartedVerification): string {
  return JSON.stringify({ ...started, expiresAt: started.expiresAt.toISOString() });
}

function decode(value: string): StartedVerification {
  const parsed = parseStored<Omit<StartedVerification, 'expiresAt'> & { expiresAt: string }>(value);
  return { ...parsed, expiresAt: new Date(parsed.expiresAt) };
}
