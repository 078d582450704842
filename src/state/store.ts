/**
 * The one small storage interface behind duplicate protection (issue 5): short-lived values
 * (idempotency records, flight results), leases (in-flight locks) and per-caller limits.
 *
 * Two implementations: in-process (memory.ts, the default) and Redis (redis.ts, REDIS_URL) so the
 * guarantees hold across instances; failover.ts puts the in-process one behind Redis for outages.
 * Keys arrive already hashed (see ../idempotency.ts): no store ever sees a user id or an
 * idempotency key in clear.
 */

export type LimitDecision =
  | {
      readonly allowed: true;
      /**
       * Gives the point back to the store and window that counted it (an attempt that turned out
       * to cost nothing); nothing once that window has ended, so no later window gains a point.
       */
      readonly refund: () => Promise<void>;
    }
  | { readonly allowed: false; readonly retryAfterMs: number };

export interface SharedState {
  /**
   * Whether other gateway processes see this state (Redis, while it answers). When not, leases
   * and flight results would only ever be read by this process, which joins its own identical
   * requests without them (see ../idempotency.ts), so SharedFlights skips them.
   */
  readonly shared: boolean;
  /**
   * Takes the lease on `key` for `owner` (a random nonce) unless someone else holds it. Returns the
   * holder: `owner` itself when taken, the other holder's nonce otherwise.
   */
  claim(key: string, owner: string, ttlMs: number): Promise<string>;
  /** Extends the lease while `owner` still holds it; false when it has been lost (expired, taken over). */
  renew(key: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Drops the lease if `owner` still holds it. */
  release(key: string, owner: string): Promise<void>;
  /** Reads several values as one snapshot (null where absent or expired). */
  read(keys: readonly string[]): Promise<(string | null)[]>;
  /** Writes a value that disappears after `ttlMs`. */
  write(key: string, value: string, ttlMs: number): Promise<void>;
  /** Counts one event against `subject`'s limit (RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_SECONDS). */
  consume(subject: string): Promise<LimitDecision>;
  close(): Promise<void>;
}

/** Where the state lives, for readiness and metrics: `active` is `memory` while Redis is unreachable. */
export interface SharedStateStatus {
  readonly configured: 'memory' | 'redis';
  readonly active: 'memory' | 'redis';
  /** While Redis is configured but not in use: why (its latest error's code and message; never REDIS_URL). */
  readonly reason?: string;
  /** The same as a bare code (ECONNREFUSED, WRONGPASS, NO_ANSWER, …): what /readyz shows. */
  readonly reasonCode?: string;
}

export interface LimitSettings {
  readonly max: number;
  readonly windowSeconds: number;
}
