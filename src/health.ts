/**
 * Liveness and readiness.
 *
 * Readiness answers one question for a load balancer: may this instance take new traffic? It is
 * 503 while the gateway starts and once it drains for shutdown, 200 otherwise. Dependencies are
 * reported in the body but never turn readiness off: an IDV outage hits every instance at once,
 * and taking them all out of rotation would turn "the platform is down" (a retryable
 * IDV_UNAVAILABLE answer) into "the gateway is gone" (connection refused). Likewise for Redis,
 * which the gateway degrades without.
 */
import express from 'express';

export type Phase = 'starting' | 'ready' | 'draining';

/** One dependency's state as /readyz shows it; `state` first, then whatever helps an operator. */
export interface DependencyReport {
  readonly state: string;
  readonly [detail: string]: unknown;
}

export type DependencyReporter = () => DependencyReport | Promise<DependencyReport>;

export interface ReadinessReport {
  readonly status: Phase;
  readonly dependencies: Record<string, DependencyReport>;
}

export class Readiness {
  #phase: Phase = 'starting';
  readonly #dependencies = new Map<string, DependencyReporter>();

  get phase(): Phase {
    return this.#phase;
  }

  /** Listening and wired: take traffic. Never undoes draining. */
  markReady(): void {
    if (this.#phase === 'starting') this.#phase = 'ready';
  }

  /** Shutting down: stop taking traffic, for good. */
  markDraining(): void {
    this.#phase = 'draining';
  }

  /**
   * Adds or replaces what /readyz says about a dependency: the gateway registers `idv`,
   * `circuitBreaker`, `bulkhead` and `redis`.
   */
  setDependency(name: string, reporter: DependencyReporter): void {
    this.#dependencies.set(name, reporter);
  }

  async report(): Promise<ReadinessReport> {
    const entries = await Promise.all(
      [...this.#dependencies].map(async ([name, reporter]): Promise<[string, DependencyReport]> => {
        try {
          return [name, await reporter()];
        } catch {
          // A broken reporter must not break readiness; say so instead.
          return [name, { state: 'unknown' }];
        }
      }),
    );
    return { status: this.#phase, dependencies: Object.fromEntries(entries) };
  }
}

/** GET /healthz (the process serves) and GET /readyz (it takes traffic; dependencies' states). */
export function healthRoutes(readiness: Readiness): express.Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.setHeader('cache-control', 'no-store');
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const report = await readiness.report();
    res.setHeader('cache-control', 'no-store');
    res.status(report.status === 'ready' ? 200 : 503).json(report);
  });
  return router;
}
