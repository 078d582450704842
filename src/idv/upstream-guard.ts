import type { ResilienceSettings } from '../config.js';
import { IdvError, type CallContext } from './platform.js';

interface Waiter {
  readonly grant: () => void;
}

/**
 * Bounds one mutation's upstream work in time and in number:
 * - a deadline (IDV_DEADLINE_MS) for the whole mutation, retries and queueing included, carried
 *   to every call as an end time that cuts its timeout (no timer or abort signal per mutation:
 *   AbortSignal.timeout and AbortSignal.any cost more CPU than the rest of a request's upstream
 *   bookkeeping together on Node 20); the caller leaving aborts the work through its own signal;
 * - a bulkhead: at most IDV_MAX_CONCURRENCY mutations talk to the platform at once, at most
 *   IDV_MAX_QUEUE wait (each for IDV_QUEUE_WAIT_MS at most), and the rest are refused at once
 *   with a retry hint, rather than piling up sockets and memory behind a slow platform.
 */
export class UpstreamGuard {
  #active = 0;
  readonly #queue: Waiter[] = [];

  constructor(private readonly settings: ResilienceSettings) {}

  get load(): { active: number; queued: number } {
    return { active: this.#active, queued: this.#queue.length };
  }

  async run<T>(context: CallContext, work: (guarded: CallContext) => Promise<T>): Promise<T> {
    const guarded: CallContext = { ...context, deadline: Date.now() + this.settings.deadlineMs };
    await this.#acquire(guarded);
    try {
      return await work(guarded);
    } finally {
      this.#release();
    }
  }

  async #acquire(context: CallContext): Promise<void> {
    if (this.#active < this.settings.maxConcurrency) {
      this.#active += 1;
      return;
    }
    if (this.#queue.length >= this.settings.maxQueue) {
      throw new IdvError('unavailable', 'bulkhead', 'too many verifications in progress; refused without queueing', {
        cause: 'queue-full',
        retryAfterSeconds: 1,
      });
    }
    const { signal, deadline = Infinity } = context;
    // Waiting ends at the queue's own limit or at the mutation's deadline, whichever comes first.
    const leftMs = deadline - Date.now();
    const cause = leftMs < this.settings.queueWaitMs ? 'deadline' : 'queue-timeout';
    const waitMs = Math.max(0, Math.min(this.settings.queueWaitMs, leftMs));
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        grant: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const giveUp = (why: 'queue-timeout' | 'deadline' | 'cancelled') => {
        const index = this.#queue.indexOf(waiter);
        if (index >= 0) this.#queue.splice(index, 1);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        reject(new IdvError('unavailable', 'bulkhead', 'no upstream slot became free in time', { cause: why, retryAfterSeconds: 1 }));
      };
      const onAbort = () => giveUp('cancelled');
      const timer = setTimeout(() => giveUp(cause), waitMs);
      if (signal?.aborted) return giveUp('cancelled');
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  #release(): void {
    const next = this.#queue.shift();
    // The slot passes straight to the next waiter, so #active stays the same.
    if (next) next.grant();
    else this.#active -= 1;
  }
}
