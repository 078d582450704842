import { InMemoryLRUCache, type KeyValueCache, type KeyValueCacheSetOptions } from '@apollo/utils.keyvaluecache';
import type { FailoverState } from './failover.js';
import type { RedisState } from './redis.js';

/**
 * Apollo's APQ cache on the gateway's own Redis connection, so a query registered through one
 * instance is found by the others. Apollo's documented path is Keyv (@apollo/utils.keyvadapter
 * with @keyv/redis), but @keyv/redis brings a second Redis client library and its own connection
 * and error handling; this implements the same KeyValueCache interface on the ioredis client the
 * rest of the state uses, and follows its failover: while Redis is away, a bounded in-memory LRU
 * (Apollo's default cache) serves. A miss is harmless: the client sends the full query again.
 * What is stored: query texts under their SHA-256, nothing about callers.
 */
/**
 * How long a persisted query is kept: the TTL the server gives Apollo, and the fallback here when
 * Apollo gives none, so Redis never fills with abandoned queries.
 */
export const APQ_TTL_SECONDS = 86_400;

export class ApqCache implements KeyValueCache<string> {
  readonly #local = new InMemoryLRUCache<string>();

  constructor(
    private readonly redis: RedisState,
    private readonly failover: FailoverState,
    private readonly prefix: string,
  ) {}

  async get(key: string): Promise<string | undefined> {
    if (this.failover.shared) {
      try {
        return (await this.redis.client.get(this.prefix + key)) ?? undefined;
      } catch (error) {
        this.failover.degrade(error);
      }
    }
    return this.#local.get(key);
  }

  async set(key: string, value: string, options?: KeyValueCacheSetOptions): Promise<void> {
    if (this.failover.shared) {
      try {
        const ttl = options?.ttl;
        await this.redis.client.set(this.prefix + key, value, 'EX', typeof ttl === 'number' && ttl > 0 ? Math.ceil(ttl) : APQ_TTL_SECONDS);
        return;
      } catch (error) {
        this.failover.degrade(error);
      }
    }
    await this.#local.set(key, value, options);
  }

  async delete(key: string): Promise<boolean | void> {
    if (this.failover.shared) {
      try {
        await this.redis.client.del(this.prefix + key);
        return;
      } catch (error) {
        this.failover.degrade(error);
      }
    }
    return this.#local.delete(key);
  }
}
