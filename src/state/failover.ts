import type { Logger } from 'pino';
import type { MemoryState } from './memory.js';
import type { RedisState } from './redis.js';
import type { LimitDecision, SharedState, SharedStateStatus } from './store.js';

const PROBE_INTERVAL_MS = 500;

/**
 * Redis when it answers, the in-process state when it does not: Redis trouble never takes
 * verifications down, it only narrows the guarantees to one instance until Redis is back.
 *
 * The first failed command switches every later one to memory at once (no waiting on a dead
 * Redis per request), logs one warning, and starts a probe; when Redis answers a PING again the
 * gateway switches back and logs that once. Leases and records written to memory meanwhile stay
 * there: they only ever protected this instance, and reads still find them there until they expire.
 */
export class FailoverState implements SharedState {
  #degraded = false;
  #probe: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(
    private readonly redis: RedisState,
    private readonly memory: MemoryState,
    private readonly logger: Logger,
    private readonly onChange: (usingRedis: boolean) => void = () => {},
  ) {}

  get status(): SharedStateStatus {
    return { configured: 'redis', active: this.#degraded ? 'memory' : 'redis' };
  }

  /** At start-up: use Redis if it answers soon, otherwise start degraded rather than not at all. */
  async connect(waitMs: number): Promise<void> {
    const ready = new Promise<boolean>((resolve) => {
      if (this.redis.client.status === 'ready') return resolve(true);
      const timer = setTimeout(() => resolve(false), waitMs);
      this.redis.client.once('ready', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!(await ready)) this.degrade(new Error('Redis did not answer at start-up'));
  }

  /** Marks Redis as unusable until the probe sees it answer again. Public for the APQ cache. */
  degrade(cause: unknown): void {
    if (this.#degraded || this.#closed) return;
    this.#degraded = true;
    this.onChange(false);
    // The error message only: REDIS_URL (with its password) is never part of what is logged.
    this.logger.warn(
      { err: cause instanceof Error ? cause.message : String(cause) },
      'Redis is unreachable: idempotency, single flight and rate limits now hold per instance only, until it is back',
    );
    this.#probe = setInterval(() => void this.#tryRecover(), PROBE_INTERVAL_MS);
    this.#probe.unref();
  }

  get shared(): boolean {
    return !this.#degraded;
  }

  async #tryRecover(): Promise<void> {
    try {
      await this.redis.ping();
    } catch {
      return;
    }
    if (!this.#degraded) return;
    this.#degraded = false;
    this.onChange(true);
    if (this.#probe) clearInterval(this.#probe);
    this.#probe = null;
    this.logger.info('Redis is reachable again: idempotency, single flight and rate limits hold across instances again');
  }

  async #use<T>(operation: (state: SharedState) => Promise<T>): Promise<T> {
    if (!this.#degraded) {
      try {
        return await operation(this.redis);
      } catch (error) {
        this.degrade(error);
      }
    }
    return operation(this.memory);
  }

  claim(key: string, owner: string, ttlMs: number): Promise<string> {
    return this.#use((state) => state.claim(key, owner, ttlMs));
  }

  renew(key: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.#use((state) => state.renew(key, owner, ttlMs));
  }

  release(key: string, owner: string): Promise<void> {
    return this.#use((state) => state.release(key, owner));
  }

  async read(keys: readonly string[]): Promise<(string | null)[]> {
    const values = await this.#use((state) => state.read(keys));
    // What this instance wrote to memory while Redis was away (an idempotency key started then)
    // still answers here once Redis is back, until it expires; Redis never had it.
    if (this.#degraded || this.memory.size === 0 || !values.includes(null)) return values;
    const local = await this.memory.read(keys);
    return values.map((value, i) => value ?? local[i] ?? null);
  }

  write(key: string, value: string, ttlMs: number): Promise<void> {
    return this.#use((state) => state.write(key, value, ttlMs));
  }

  consume(subject: string): Promise<LimitDecision> {
    return this.#use((state) => state.consume(subject));
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#probe) clearInterval(this.#probe);
    await Promise.all([this.redis.close(), this.memory.close()]);
  }
}
