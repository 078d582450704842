import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { LimitDecision, LimitSettings, SharedState } from './store.js';

interface Entry {
  readonly value: string;
  expiresAt: number;
}

const SWEEP_INTERVAL_MS = 30_000;

/**
 * In-process state: the default (one instance needs nothing else), and the fallback while Redis
 * is unreachable. Expired entries are dropped when read and by a periodic sweep, so memory stays
 * bounded by what is live (records live as long as their handoff; the limit bounds how many
 * handoffs a caller can make).
 */
export class MemoryState implements SharedState {
  readonly shared = false;
  readonly #entries = new Map<string, Entry>();
  readonly #limiter: RateLimiterMemory | null;
  readonly #sweeper: NodeJS.Timeout;

  constructor(
    limit: LimitSettings | null,
    private readonly now: () => number = Date.now,
  ) {
    this.#limiter = limit === null ? null : new RateLimiterMemory({ points: limit.max, duration: limit.windowSeconds });
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
    this.#sweeper.unref();
  }

  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry && entry.expiresAt <= this.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  #sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(key);
  }

  async claim(key: string, owner: string, ttlMs: number): Promise<string> {
    const held = this.#live(key);
    if (held) return held.value;
    this.#entries.set(key, { value: owner, expiresAt: this.now() + ttlMs });
    return owner;
  }

  async renew(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const held = this.#live(key);
    if (held?.value !== owner) return false;
    held.expiresAt = this.now() + ttlMs;
    return true;
  }

  /** Entries held, expired ones included until the next sweep. */
  get size(): number {
    return this.#entries.size;
  }

  async release(key: string, owner: string): Promise<void> {
    if (this.#live(key)?.value === owner) this.#entries.delete(key);
  }

  async read(keys: readonly string[]): Promise<(string | null)[]> {
    return keys.map((key) => this.#live(key)?.value ?? null);
  }

  async write(key: string, value: string, ttlMs: number): Promise<void> {
    this.#entries.set(key, { value, expiresAt: this.now() + ttlMs });
  }

  async consume(subject: string): Promise<LimitDecision> {
    if (this.#limiter === null) return { allowed: true, refund: nothingToRefund };
    return consumeWith(this.#limiter, subject);
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#entries.clear();
  }
}

/**
 * rate-limiter-flexible answers "over the limit" by rejecting with a RateLimiterRes and a store
 * failure by rejecting with an Error: the first is a decision, the second is thrown on.
 */
export async function consumeWith(
  limiter: { consume(key: string, points?: number): Promise<RateLimiterRes>; reward(key: string, points?: number): Promise<RateLimiterRes> },
  subject: string,
): Promise<LimitDecision> {
  try {
    const counted = await limiter.consume(subject, 1);
    const windowEnds = Date.now() + counted.msBeforeNext;
    // reward() on a window that has ended would start the next one below zero.
    const refund = async () => {
      if (Date.now() < windowEnds) await limiter.reward(subject, 1);
    };
    return { allowed: true, refund };
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes) return { allowed: false, retryAfterMs: rejection.msBeforeNext };
    throw rejection;
  }
}

export const nothingToRefund = async (): Promise<void> => {};
