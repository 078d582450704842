import type { Logger } from 'pino';
import type { MemoryState } from './memory.js';
import { describeRedisError, type RedisFailure, type RedisState } from './redis.js';
import type { LimitDecision, SharedState, SharedStateStatus } from './store.js';

const PROBE_INTERVAL_MS = 500;

/**
 * Redis when it answers, the in-process state when it does not: Redis trouble never takes
 * verifications down, it only narrows the guarantees to one instance until Redis is back.
 *
 * The first failed command switches every later one to memory at once (no waiting on a dead
 * Redis per request), logs one warning, and starts a probe; when Redis answers a PING again the
 * gateway switches back and logs that once. While degraded, `status` says why (the error that set
 * it off, then the client's latest), and each new reason is logged once per outage. Leases and
 * records written to memory meanwhile stay there: they only ever protected this instance, and reads
 * still find them there until they expire.
 */
export class FailoverState implements SharedState {
  #degraded = false;
  #probe: NodeJS.Timeout | null = null;
  #closed = false;
  /** The client's latest connection error since it was last ready (describeRedisError). */
  #lastClientError: RedisFailure | null = null;
  /** While degraded: why, for /readyz. */
  #reason: RedisFailure | null = null;
  /** The reasons logged in this outage: a client that retries into the same error every 2 s logs it once. */
  readonly #logged = new Set<string>();

  constructor(
    private readonly redis: RedisState,
    private readonly memory: MemoryState,
    private readonly logger: Logger,
    private readonly onChange: (usingRedis: boolean) => void = () => {},
  ) {
    // The client's own errors say why Redis is unusable (a refused connection, WRONGPASS, NOAUTH,
    // a TLS failure), which neither a start-up wait running out nor a failed command does.
    redis.client.on('error', (error) => this.#clientError(error));
    redis.client.on('ready', () => {
      this.#lastClientError = null;
    });
  }

  get status(): SharedStateStatus {
    if (!this.#degraded) return { configured: 'redis', active: 'redis' };
    return { configured: 'redis', active: 'memory', ...(this.#reason === null ? {} : { reason: this.#reason.text, reasonCode: this.#reason.code }) };
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
    if (!(await ready)) this.#degrade(this.#lastClientError ?? { text: 'Redis did not answer at start-up', code: 'NO_ANSWER' });
  }

  /** Marks Redis as unusable until the probe sees it answer again. Public for the APQ cache. */
  degrade(cause: unknown): void {
    this.#degrade(this.#describe(cause));
  }

  #degrade(reason: RedisFailure): void {
    if (this.#degraded || this.#closed) return;
    this.#degraded = true;
    this.onChange(false);
    this.#reason = reason;
    this.#logged.add(reason.text);
    this.logger.warn(
      { err: reason.text },
      'Redis is unreachable: idempotency, single flight and rate limits now hold per instance only, until it is back',
    );
    this.#probe = setInterval(() => void this.#tryRecover(), PROBE_INTERVAL_MS);
    this.#probe.unref();
  }

  get shared(): boolean {
    return !this.#degraded;
  }

  #describe(error: unknown): RedisFailure {
    // REDIS_URL (with its password) is never part of what is logged or reported.
    return describeRedisError(error, this.redis.client.options.password);
  }

  #clientError(error: unknown): void {
    const reason = this.#describe(error);
    this.#lastClientError = reason;
    if (!this.#degraded || this.#closed) return;
    this.#reason = reason;
    if (this.#logged.has(reason.text)) return;
    this.#logged.add(reason.text);
    // A reason that changes during an outage (the command that failed first, then a refused
    // connection, then WRONGPASS once Redis is back with another password) is news to an operator.
    this.logger.warn({ err: reason.text }, 'Redis is still unreachable, for another reason');
  }

  async #tryRecover(): Promise<void> {
    try {
      await this.redis.ping();
    } catch {
      return;
    }
    if (!this.#degraded) return;
    this.#degraded = false;
    this.#reason = null;
    this.#logged.clear();
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
