import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { consumeWith, nothingToRefund } from './memory.js';
import type { LimitDecision, LimitSettings, SharedState } from './store.js';

/** How long one Redis command may take before it counts as Redis trouble (and the gateway degrades). */
export const REDIS_COMMAND_TIMEOUT_MS = 1000;

// Atomic "take it, or tell me who has it": SET NX alone cannot say who holds the lease, and a
// separate GET could miss a holder that released in between.
const CLAIM = `if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return ARGV[1] end
return redis.call('GET', KEYS[1])`;
// Renew and release only our own lease: after a stall the lease may have passed to someone else.
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;
// A persisted query is shared only within the window's budget of new ones: a query already there
// costs nothing, a new one takes one from the count (KEYS[2]), which expires when its window ends
// (ARGV[4]: the milliseconds left in it), not a whole window after the window's first new query.
const SHARE_QUERY = `if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
local taken = redis.call('INCR', KEYS[2])
if taken == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
if taken > tonumber(ARGV[3]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1`;

interface ScriptCommands {
  idvClaim(key: string, owner: string, ttlMs: number): Promise<string | null>;
  idvRenew(key: string, owner: string, ttlMs: number): Promise<number>;
  idvRelease(key: string, owner: string): Promise<number>;
  idvShareQuery(key: string, budgetKey: string, text: string, ttlSeconds: number, budget: number, windowLeftMs: number): Promise<number>;
}

/**
 * A Redis connection that fails fast rather than queueing: while Redis is away every command
 * rejects at once (no offline queue, no retries per request), so a request never waits on it;
 * ioredis keeps reconnecting in the background with a capped backoff.
 */
export function connectRedis(url: string): Redis {
  const client = new Redis(url, {
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(100 * attempt, 2000),
  });
  // Without a listener, ioredis's 'error' events would crash the process. Connection errors also
  // surface as failed commands; failover.ts listens too and keeps the last one as the reason Redis
  // is not in use.
  client.on('error', () => {});
  return client;
}

// Shorter ones are not masked: replacing every "6379" or "redis" in a message would garble it,
// and show what the password is.
const MIN_MASKED_PASSWORD_LENGTH = 8;

/** Why Redis is not in use: for the log line, and the bare code for the public /readyz. */
export interface RedisFailure {
  /** The error's code and message (describeRedisError). */
  readonly text: string;
  /** Node's error code (ECONNREFUSED, ETIMEDOUT, …), Redis's reply prefix (WRONGPASS, NOAUTH, …), or ERROR. */
  readonly code: string;
}

/**
 * What a Redis client error may say in a log line: its code and message, nothing else. Never the
 * error object: ioredis attaches the failed command to it, and for the connection's handshake
 * (HELLO … AUTH) its arguments are the username and password. Redis's replies (WRONGPASS, NOAUTH)
 * and Node's socket and TLS errors do not repeat the password, but a long one is masked anyway,
 * so that one that ever did could not leak it. The message names addresses, so /readyz, which
 * anyone reaching the port can read, gets only the code.
 */
export function describeRedisError(error: unknown, password: string | undefined): RedisFailure {
  // Duck-typed, not `instanceof Error`: Node's own socket errors come from another realm when the
  // gateway runs in a vm context (jest), and would be logged as "Error: …" otherwise.
  const { message, code } = typeof error === 'object' && error !== null ? (error as { message?: unknown; code?: unknown }) : {};
  const text = typeof message === 'string' ? message : String(error);
  const described = typeof code === 'string' && !text.includes(code) ? `${code}: ${text}` : text;
  const masked = password && password.length >= MIN_MASKED_PASSWORD_LENGTH ? described.replaceAll(password, '***') : described;
  const replyPrefix = /^([A-Z][A-Z_]{2,})\b/.exec(text)?.[1];
  return { text: masked, code: typeof code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(code) ? code : (replyPrefix ?? 'ERROR') };
}

/** Shared state on Redis, every key under `prefix`, values expiring with PX. */
export class RedisState implements SharedState {
  readonly shared = true;
  readonly #commands: ScriptCommands;
  readonly #limiter: RateLimiterRedis | null;

  constructor(
    readonly client: Redis,
    private readonly prefix: string,
    limit: LimitSettings | null,
  ) {
    client.defineCommand('idvClaim', { numberOfKeys: 1, lua: CLAIM });
    client.defineCommand('idvRenew', { numberOfKeys: 1, lua: RENEW });
    client.defineCommand('idvRelease', { numberOfKeys: 1, lua: RELEASE });
    client.defineCommand('idvShareQuery', { numberOfKeys: 2, lua: SHARE_QUERY });
    this.#commands = client as unknown as ScriptCommands;
    this.#limiter =
      limit === null
        ? null
        : new RateLimiterRedis({
            storeClient: client,
            keyPrefix: `${prefix}limit`,
            points: limit.max,
            duration: limit.windowSeconds,
            // Reject at once while disconnected instead of waiting on the client.
            rejectIfRedisNotReady: true,
          });
  }

  async claim(key: string, owner: string, ttlMs: number): Promise<string> {
    const holder = await this.#commands.idvClaim(this.prefix + key, owner, ttlMs);
    // Only possible if the holder's lease expired inside the script's instant: treat as taken by us next time.
    if (holder === null) throw new Error('lease vanished while claiming');
    return holder;
  }

  async renew(key: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.#commands.idvRenew(this.prefix + key, owner, ttlMs)) === 1;
  }

  async release(key: string, owner: string): Promise<void> {
    await this.#commands.idvRelease(this.prefix + key, owner);
  }

  async read(keys: readonly string[]): Promise<(string | null)[]> {
    return this.client.mget(keys.map((key) => this.prefix + key));
  }

  async remove(key: string): Promise<void> {
    await this.client.del(this.prefix + key);
  }

  async write(key: string, value: string, ttlMs: number): Promise<void> {
    await this.client.set(this.prefix + key, value, 'PX', Math.max(1, Math.ceil(ttlMs)));
  }

  /**
   * Stores a persisted query's text for every instance, unless it is new and this window's budget
   * of new ones (`budget` per `windowSeconds`, counted across instances) is spent. True when the
   * text is stored (now or before).
   */
  async shareQuery(key: string, text: string, ttlSeconds: number, budget: { count: number; windowSeconds: number }, now = Date.now()): Promise<boolean> {
    const windowMs = budget.windowSeconds * 1000;
    const window = Math.floor(now / windowMs);
    const budgetKey = `${this.prefix}apq-budget:${window}`;
    const windowLeftMs = (window + 1) * windowMs - now;
    return (await this.#commands.idvShareQuery(this.prefix + key, budgetKey, text, ttlSeconds, budget.count, windowLeftMs)) === 1;
  }

  async consume(subject: string): Promise<LimitDecision> {
    if (this.#limiter === null) return { allowed: true, refund: nothingToRefund };
    return consumeWith(this.#limiter, subject);
  }

  /** Answers when Redis is reachable and answering; rejects otherwise. */
  async ping(): Promise<void> {
    await this.client.ping();
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }
}
