import type { KeyValueCache } from '@apollo/utils.keyvaluecache';
import type { Logger } from 'pino';
import type { RateLimitSettings, StateSettings } from '../config.js';
import { ApqCache } from './apq-cache.js';
import { FailoverState } from './failover.js';
import { MemoryState } from './memory.js';
import { connectRedis, RedisState } from './redis.js';
import type { SharedState, SharedStateStatus } from './store.js';

export type { SharedState, SharedStateStatus } from './store.js';

export interface StateBackend {
  readonly state: SharedState;
  /** Apollo's APQ cache on Redis; undefined keeps Apollo's own in-memory default. */
  readonly apqCache: KeyValueCache<string> | undefined;
  status(): SharedStateStatus;
  close(): Promise<void>;
}

/** How long start-up waits for Redis before starting degraded (per-instance) instead. */
const STARTUP_WAIT_MS = 2000;

/** In-process state, or Redis (REDIS_URL) with the in-process state as its fallback. */
export async function openState(
  settings: StateSettings,
  limit: RateLimitSettings | null,
  logger: Logger,
  /** Called with whether Redis is in use, at start and on every change (the redis_available metric). */
  onRedisChange: (up: boolean) => void = () => {},
): Promise<StateBackend> {
  const memory = new MemoryState(limit);
  if (settings.redisUrl === null) {
    onRedisChange(false);
    return { state: memory, apqCache: undefined, status: () => ({ configured: 'memory', active: 'memory' }), close: () => memory.close() };
  }
  const redis = new RedisState(connectRedis(settings.redisUrl), settings.keyPrefix, limit);
  const failover = new FailoverState(redis, memory, logger, onRedisChange);
  await failover.connect(STARTUP_WAIT_MS);
  onRedisChange(failover.shared);
  return {
    state: failover,
    // Under the state's prefix (RedisState's); Apollo's own keys already start with `apq:`.
    apqCache: new ApqCache(redis, failover, logger),
    status: () => failover.status,
    close: () => failover.close(),
  };
}
