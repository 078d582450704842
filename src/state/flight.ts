import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { GraphQLError } from 'graphql';
import { ErrorCode, gatewayError, INTERNAL_ERROR_MESSAGE } from '../errors.js';
import type { SharedState } from './store.js';

export interface FlightSettings {
  /**
   * How long a lease lasts without renewal. The leader renews it every third of that while it
   * works, so this bounds how long followers wait after a leader crashed, not how long work may take.
   */
  readonly leaseMs: number;
  /** The longest a follower waits for a live leader before answering IDV_UNAVAILABLE. */
  readonly maxWaitMs: number;
  /** How long a leader's outcome stays readable for its followers. */
  readonly resultTtlMs: number;
}

const DEFAULT_FLIGHT_SETTINGS: FlightSettings = { leaseMs: 10_000, maxWaitMs: 60_000, resultTtlMs: 60_000 };

/**
 * Settings that fit a mutation deadline: a lease that outlives the leader's whole upstream work
 * even if no renewal reaches Redis (so no other instance can take over while it works), and
 * followers that wait no longer than that work can take.
 */
export function flightSettingsFor(deadlineMs: number): FlightSettings {
  const leaseMs = Math.max(DEFAULT_FLIGHT_SETTINGS.leaseMs, deadlineMs + 2000);
  return { leaseMs, maxWaitMs: leaseMs, resultTtlMs: DEFAULT_FLIGHT_SETTINGS.resultTtlMs };
}

const UNAVAILABLE_MESSAGE = 'The identity verification service is temporarily unavailable. Retry in a moment.';

/** How a flight's value is written for followers on other instances to read (e.g. sealed JSON). */
export interface FlightCodec<T> {
  encode(value: T): string;
  decode(stored: string): T;
}

/** What a follower gets back from the leader: its value, or the client error it answered with. */
type Outcome = { readonly ok: true; readonly value: string } | { readonly ok: false; readonly message: string; readonly extensions: Record<string, unknown> };

const FIRST_POLL_MS = 10;
const MAX_POLL_MS = 200;

/**
 * Single flight across instances: for one key, one caller (the leader) does the work while the
 * others (followers) wait for its outcome, success or client error, and get the same.
 *
 * The leader holds a lease (`lock:<key>` = a random nonce, SET NX PX, renewed while it works),
 * writes its outcome to `result:<nonce>`, then drops the lease; followers learn the nonce from
 * the claim itself and poll the result and the lease in one snapshot. The outcome is written
 * before the lease is dropped, so "no lease and no result" can only mean the leader is gone
 * (crashed, or its lease ran out in a stall): a follower then tries to lead itself. Polling
 * rather than pub/sub: no second connection, nothing lost between subscribe and publish, and a
 * wait is one short upstream call long.
 */
export class SharedFlights {
  /** Flights this instance leads, until their outcome is written and their lease dropped. */
  readonly #leading = new Set<Promise<unknown>>();

  constructor(
    private readonly state: SharedState,
    private readonly settings: FlightSettings = DEFAULT_FLIGHT_SETTINGS,
  ) {}

  /**
   * Waits (at most `timeoutMs`) for the flights this instance leads to write their outcome and drop
   * their lease. For shutdown: a leader cut off by the drain still tells its followers elsewhere,
   * and frees the lease, before the state is closed under it.
   */
  async settle(timeoutMs: number): Promise<void> {
    if (this.#leading.size === 0) return;
    // An unref'd timer: once the flights have settled, it keeps nothing (the process) waiting.
    await Promise.race([Promise.allSettled([...this.#leading]), sleep(timeoutMs, undefined, { ref: false })]);
  }

  /**
   * Runs `work` once for all concurrent callers of `key`; `led` says whether this caller did it.
   * `onFollow` is called each time this caller starts waiting on another's work (for logs).
   * `unshared` says, when the work failed, whether its failure is not for followers: the work was
   * only given up (its callers left), or refused in a way each follower can be told as cheaply by
   * leading itself. Then no outcome is written, and followers take over once the lease is dropped.
   */
  async run<T>(
    key: string,
    onFollow: () => void,
    work: () => Promise<T>,
    codec: FlightCodec<T>,
    unshared: (error: unknown) => boolean = () => false,
  ): Promise<{ value: T; led: boolean }> {
    // Nobody else can see this state: no one to coordinate with beyond this process's own join,
    // and nothing to encode.
    if (!this.state.shared) return { value: await work(), led: true };
    const deadline = Date.now() + this.settings.maxWaitMs;
    for (;;) {
      // Shared state lost while following (Redis down): the leader elsewhere may still be at
      // work, and leading here, on state no one else sees, could start a second session.
      if (!this.state.shared) throw gatewayError(ErrorCode.IDV_UNAVAILABLE, UNAVAILABLE_MESSAGE);
      const nonce = randomBytes(16).toString('base64url');
      const holder = await this.state.claim(`lock:${key}`, nonce, this.settings.leaseMs);
      if (holder === nonce) {
        const lead = this.#lead(key, nonce, work, codec, unshared);
        this.#leading.add(lead);
        try {
          return { value: await lead, led: true };
        } finally {
          this.#leading.delete(lead);
        }
      }
      onFollow();
      const outcome = await this.#follow(key, holder, deadline);
      if (outcome === null) continue;
      if (outcome.ok) return { value: codec.decode(outcome.value), led: false };
      throw new GraphQLError(outcome.message, { extensions: outcome.extensions });
    }
  }

  async #lead<T>(key: string, nonce: string, work: () => Promise<T>, codec: FlightCodec<T>, unshared: (error: unknown) => boolean): Promise<T> {
    const { leaseMs, resultTtlMs } = this.settings;
    const renewal = setInterval(() => {
      this.state.renew(`lock:${key}`, nonce, leaseMs).catch(() => {});
    }, Math.max(1, Math.floor(leaseMs / 3)));
    try {
      let value: T;
      try {
        value = await work();
      } catch (error) {
        if (!unshared(error)) await this.state.write(`result:${nonce}`, JSON.stringify(shareable(error)), resultTtlMs).catch(() => {});
        throw error;
      }
      const outcome: Outcome = { ok: true, value: codec.encode(value) };
      await this.state.write(`result:${nonce}`, JSON.stringify(outcome), resultTtlMs);
      return value;
    } finally {
      clearInterval(renewal);
      await this.state.release(`lock:${key}`, nonce).catch(() => {});
    }
  }

  /** The leader's outcome, or null when it is gone without one (then the caller tries to lead). */
  async #follow(key: string, holder: string, deadline: number): Promise<Outcome | null> {
    let pause = FIRST_POLL_MS;
    for (;;) {
      const [result = null, lease = null] = await this.state.read([`result:${holder}`, `lock:${key}`]);
      if (result !== null) return parseOutcome(result);
      if (!this.state.shared || Date.now() > deadline) throw gatewayError(ErrorCode.IDV_UNAVAILABLE, UNAVAILABLE_MESSAGE);
      if (lease !== holder) return null;
      await sleep(pause);
      pause = Math.min(MAX_POLL_MS, pause * 2);
    }
  }
}

/** A stored outcome; a corrupt one is reported without quoting it (it may hold a handoff URL). */
function parseOutcome(stored: string): Outcome {
  try {
    return JSON.parse(stored) as Outcome;
  } catch {
    throw new Error('a stored single-flight outcome is not valid JSON');
  }
}

/**
 * The leader's failure as its followers get it: a client-facing GraphQLError as it is (its
 * message and extensions are already safe to show), anything else as the generic internal error.
 */
function shareable(error: unknown): Outcome {
  if (error instanceof GraphQLError && typeof error.extensions.code === 'string') {
    // Minus `http`: a status or headers set for the leader's response are not the followers'.
    const extensions: Record<string, unknown> = { ...error.extensions };
    delete extensions.http;
    return { ok: false, message: error.message, extensions };
  }
  const internal = gatewayError(ErrorCode.INTERNAL_SERVER_ERROR, INTERNAL_ERROR_MESSAGE);
  return { ok: false, message: internal.message, extensions: { ...internal.extensions } };
}
