import { InMemoryLRUCache, type KeyValueCache, type KeyValueCacheSetOptions } from '@apollo/utils.keyvaluecache';
import type { Logger } from 'pino';
import type { FailoverState } from './failover.js';
import type { RedisState } from './redis.js';

/**
 * How long a persisted query is kept: the TTL the server gives Apollo, and the fallback here when
 * Apollo gives none, so Redis never fills with abandoned queries.
 */
export const APQ_TTL_SECONDS = 86_400;

/**
 * What Redis may be made to hold. Any client can register any valid query, without a token (Apollo
 * stores it once it validates, before any resolver checks the caller), and a comment (which the
 * token limit does not count) pads one to the body limit: without these, one client could fill
 * the Redis that also holds the leases and idempotency records (200 registrations of 60 KB took
 * 13 MB, kept for a day). An app's own operations are a few dozen texts of a few KB, registered
 * once a day; beyond either bound a query is kept by this instance alone, which only costs a
 * client the round trip that registers it on each other instance.
 */
export interface ApqSharing {
  /** Longest query text shared, in UTF-8 bytes. */
  readonly maxBytes: number;
  /** New queries shared per window, across all instances; a query already shared costs nothing. */
  readonly newPerWindow: number;
  readonly windowSeconds: number;
}

export const APQ_SHARING: ApqSharing = { maxBytes: 16 * 1024, newPerWindow: 100, windowSeconds: 3600 };

/**
 * Apollo's APQ cache on the gateway's own Redis connection, so a query registered through one
 * instance is found by the others. Apollo's documented path is Keyv (@apollo/utils.keyvadapter
 * with @keyv/redis), but @keyv/redis brings a second Redis client library and its own connection
 * and error handling; this implements the same KeyValueCache interface on the ioredis client the
 * rest of the state uses, and follows its failover. A bounded in-memory LRU (Apollo's default
 * cache) holds what is not shared: queries past the bounds above, and every query while Redis is
 * away. A miss is harmless: the client sends the full query again.
 * What is stored: query texts under their SHA-256, nothing about callers.
 */
export class ApqCache implements KeyValueCache<string> {
  readonly #local = new InMemoryLRUCache<string>();
  /** The budget window in which this instance last logged that the budget is spent. */
  #warnedWindow = -1;

  constructor(
    private readonly redis: RedisState,
    private readonly failover: FailoverState,
    private readonly logger: Logger,
    private readonly sharing: ApqSharing = APQ_SHARING,
  ) {}

  async get(key: string): Promise<string | undefined> {
    if (this.failover.shared) {
      try {
        const [shared] = await this.redis.read([key]);
        if (shared !== null && shared !== undefined) return shared;
      } catch (error) {
        this.failover.degrade(error);
      }
    }
    return this.#local.get(key);
  }

  async set(key: string, value: string, options?: KeyValueCacheSetOptions): Promise<void> {
    if (this.failover.shared && Buffer.byteLength(value) <= this.sharing.maxBytes) {
      try {
        const ttl = options?.ttl;
        const ttlSeconds = typeof ttl === 'number' && ttl > 0 ? Math.ceil(ttl) : APQ_TTL_SECONDS;
        const now = Date.now();
        if (await this.redis.shareQuery(key, value, ttlSeconds, { count: this.sharing.newPerWindow, windowSeconds: this.sharing.windowSeconds }, now)) return;
        this.#budgetSpent(now);
      } catch (error) {
        this.failover.degrade(error);
      }
    }
    await this.#local.set(key, value, options);
  }

  async delete(key: string): Promise<boolean | void> {
    if (this.failover.shared) {
      try {
        await this.redis.remove(key);
      } catch (error) {
        this.failover.degrade(error);
      }
    }
    return this.#local.delete(key);
  }

  /** Once per window and instance: a spent budget is worth a look (a new app release, or someone filling Redis). */
  #budgetSpent(now: number): void {
    const window = Math.floor(now / 1000 / this.sharing.windowSeconds);
    if (window === this.#warnedWindow) return;
    this.#warnedWindow = window;
    this.logger.warn(
      { newPerWindow: this.sharing.newPerWindow, windowSeconds: this.sharing.windowSeconds },
      'persisted queries (APQ): the shared budget of new queries is spent; new ones are kept per instance until the window ends',
    );
  }
}
