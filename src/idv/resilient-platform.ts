import { setTimeout as sleep } from 'node:timers/promises';
import { BrokenCircuitError, CircuitState, ConsecutiveBreaker, circuitBreaker, handleWhen, type CircuitBreakerPolicy } from 'cockatiel';
import type { Logger } from 'pino';
import type { ResilienceSettings } from '../config.js';
import {
  IdvError,
  NEVER_SENT,
  type CallContext,
  type CreatedDeeplink,
  type EphemeralDevice,
  type IdvPlatform,
  type IdvStep,
  type StartedSession,
} from './platform.js';

/**
 * What may be repeated, and why:
 * - `repeatable`: the ephemeral-device call. A device that is created but never used expires
 *   harmlessly, so it is retried on timeouts, connection failures, 429 and 5xx.
 * - `unsent-only`: the session and deeplink calls. Each creates a (paid) session and the platform
 *   has no idempotency keys, so they are repeated only when the request provably never reached
 *   the platform: the connection was refused or the host could not be resolved or reached.
 */
type RetryPolicy = 'repeatable' | 'unsent-only';

const RETRY_POLICY: Record<IdvStep, RetryPolicy> = { device: 'repeatable', session: 'unsent-only', deeplink: 'unsent-only' };
// A device is only ever made for the session call after it: none while that call's circuit cools down.
const MADE_FOR: Partial<Record<IdvStep, IdvStep>> = { device: 'session' };
const STEPS: readonly IdvStep[] = ['device', 'session', 'deeplink'];
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 1000;
// A longer Retry-After is not waited out inside one request: the client gets it as retryAfterSeconds.
const MAX_HONOURED_RETRY_AFTER_MS = 2000;
// The longest wait a Retry-After imposes on every call. The contract's rate limits are per minute,
// so a minute covers any of them; a longer value still reaches the client that received it.
const MAX_HOLD_MS = 60_000;
// A retry that waited out its own Retry-After may wake this much before the hold it started ends.
const HOLD_SLACK_MS = 50;
// A retry is only worth starting with at least this much of the deadline left.
const MIN_ATTEMPT_MS = 100;

/** The circuit breaker's state, as readiness and metrics report it. */
export type BreakerState = 'closed' | 'open' | 'half-open';

export interface ResilienceObserver {
  /** A retry going out: a failed attempt repeated, the breaker letting it through. */
  retry?(step: IdvStep): void;
  breakerState?(state: BreakerState): void;
}

interface StepBreaker {
  readonly policy: CircuitBreakerPolicy;
  openedAt: number;
}

/**
 * The platform behind retries (per the policy above) and a circuit breaker per call (step): after
 * `breakerFailures` consecutive temporary failures of a step, its calls fail at once with
 * IDV_UNAVAILABLE for the cool-down instead of queueing behind a dead upstream; then one call
 * probes, and a success closes the circuit. Per step, because one breaker for every call never
 * opened when only the session call failed: each mutation's successful device call reset the
 * count. While the session circuit cools down no device is made either: it would serve no session.
 *
 * A 408, 429 or 5xx with Retry-After holds every call for that long (at most a minute): they fail
 * at once with IDV_UNAVAILABLE and what is left of the wait, since the platform limits this
 * gateway's key, not one user. Every failed call is logged here, once, with its step, outcome,
 * attempts, duration and request id, and nothing secret.
 */
export class ResilientIdvPlatform implements IdvPlatform {
  readonly #breakers: Record<IdvStep, StepBreaker>;
  /** Date.now() until which the platform asked not to be called (Retry-After). */
  #heldUntil = 0;

  constructor(
    private readonly inner: IdvPlatform,
    private readonly settings: ResilienceSettings,
    private readonly logger: Logger,
    private readonly observer: ResilienceObserver = {},
    private readonly random: () => number = Math.random,
  ) {
    // Only the platform's own unavailability counts: not refusals, not callers that went away.
    const counts = handleWhen((error) => error instanceof IdvError && error.kind === 'unavailable' && error.details.cause !== 'cancelled');
    const breakerFor = (step: IdvStep): StepBreaker => {
      const policy = circuitBreaker(counts, { halfOpenAfter: settings.breakerCooldownMs, breaker: new ConsecutiveBreaker(settings.breakerFailures) });
      const breaker = { policy, openedAt: 0 };
      policy.onStateChange((state) => this.#onStateChange(step, breaker, state));
      return breaker;
    };
    this.#breakers = { device: breakerFor('device'), session: breakerFor('session'), deeplink: breakerFor('deeplink') };
  }

  /** Open when any step's circuit is open, else half-open when any is probing, else closed. */
  get breakerState(): BreakerState {
    const states = STEPS.map((step) => stateName(this.#breakers[step].policy.state));
    return states.includes('open') ? 'open' : states.includes('half-open') ? 'half-open' : 'closed';
  }

  createEphemeralDevice(ttlSeconds: number, context: CallContext = {}): Promise<EphemeralDevice> {
    return this.#call('device', context, () => this.inner.createEphemeralDevice(ttlSeconds, context));
  }

  startSession(
    request: { token: string; workflowId: string; externalUserId: string; locale?: string },
    context: CallContext = {},
  ): Promise<StartedSession> {
    return this.#call('session', context, () => this.inner.startSession(request, context));
  }

  createDeeplink(
    request: { workflowId: string; externalUserId: string; ttlSeconds: number; locale?: string },
    context: CallContext = {},
  ): Promise<CreatedDeeplink> {
    return this.#call('deeplink', context, () => this.inner.createDeeplink(request, context));
  }

  async #call<T>(step: IdvStep, context: CallContext, attempt: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const held = this.#held(step, 0) ?? this.#openFor(step);
    if (held) {
      this.#log(held, 0, 0, context);
      throw held;
    }
    const breaker = this.#breakers[step];
    for (let attempts = 1; ; attempts += 1) {
      let failure: IdvError;
      // A retry is counted when the breaker lets it through, not when it is planned: one the
      // breaker (opened meanwhile) refuses never reached the platform.
      const run =
        attempts === 1
          ? attempt
          : () => {
              this.observer.retry?.(step);
              return attempt();
            };
      try {
        return await breaker.policy.execute(run);
      } catch (error) {
        if (error instanceof BrokenCircuitError) {
          failure = circuitOpen(step, this.#coolDownLeftSeconds(breaker));
        } else if (error instanceof IdvError) {
          failure = error;
        } else {
          throw error;
        }
      }
      this.#holdFor(failure);
      const delayMs = this.#retryDelay(step, failure, attempts, context);
      if (delayMs === null) {
        const durationMs = Math.round(performance.now() - started);
        this.#log(failure, attempts, durationMs, context);
        throw attempts > 1 ? new IdvError(failure.kind, failure.step, failure.message, { ...failure.details, attempts, durationMs }) : failure;
      }
      this.logger.debug({ step, attempt: attempts, delayMs, requestId: context.requestId, ...failure.details }, `IDV ${step} call failed, retrying`);
      try {
        await sleep(delayMs, undefined, { signal: context.signal });
      } catch {
        // The deadline or the caller ended the wait: report the failure we had.
        this.#log(failure, attempts, Math.round(performance.now() - started), context);
        throw failure;
      }
      // Another call's answer may have started a hold, or opened the circuit of the call this one
      // is made for, while it waited to retry. (Its own Retry-After has passed by now, give or take
      // the timer's slack.)
      const heldMeanwhile = this.#held(step, HOLD_SLACK_MS) ?? this.#openFor(step);
      if (heldMeanwhile) {
        this.#log(failure, attempts, Math.round(performance.now() - started), context);
        throw new IdvError(failure.kind, failure.step, failure.message, { ...failure.details, attempts, retryAfterSeconds: heldMeanwhile.details.retryAfterSeconds });
      }
    }
  }

  /** Milliseconds to wait before the next attempt, or null when this failure is final. */
  #retryDelay(step: IdvStep, failure: IdvError, attempts: number, context: CallContext): number | null {
    if (failure.kind !== 'unavailable' || failure.details.cause !== undefined) return null;
    if (attempts > this.settings.deviceRetries) return null;
    if (RETRY_POLICY[step] === 'unsent-only' && !NEVER_SENT.has(failure.details.errorCode ?? '')) return null;
    const retryAfterMs = failure.details.retryAfterSeconds === undefined ? undefined : failure.details.retryAfterSeconds * 1000;
    if (retryAfterMs !== undefined && retryAfterMs > MAX_HONOURED_RETRY_AFTER_MS) return null;
    // Exponential backoff with jitter, so that callers failed together do not retry together.
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempts - 1));
    const delayMs = Math.max(retryAfterMs ?? 0, Math.round(ceiling / 2 + (this.random() * ceiling) / 2));
    if (context.deadline !== undefined && Date.now() + delayMs + MIN_ATTEMPT_MS > context.deadline) return null;
    return delayMs;
  }

  /** The failure of a call made during a Retry-After hold (more than `slackMs` of it left), or null. */
  #held(step: IdvStep, slackMs: number): IdvError | null {
    const heldMs = this.#heldUntil - Date.now();
    if (heldMs <= slackMs) return null;
    return new IdvError('unavailable', step, 'not calling the platform until its Retry-After has passed', {
      cause: 'retry-after',
      retryAfterSeconds: Math.ceil(heldMs / 1000),
    });
  }

  /** Starts (or extends) the hold a temporary failure with Retry-After asks for. */
  #holdFor(failure: IdvError): void {
    const { status, retryAfterSeconds } = failure.details;
    if (failure.kind !== 'unavailable' || status === undefined || retryAfterSeconds === undefined || retryAfterSeconds <= 0) return;
    const until = Date.now() + Math.min(retryAfterSeconds * 1000, MAX_HOLD_MS);
    if (until <= this.#heldUntil) return;
    const wasHeld = this.#heldUntil > Date.now();
    this.#heldUntil = until;
    if (!wasHeld) {
      this.logger.warn(
        { step: failure.step, status, retryAfterSeconds, holdMs: until - Date.now() },
        `IDV platform answered ${status} with Retry-After: every call fails at once until then`,
      );
    }
  }

  #log(failure: IdvError, attempts: number, durationMs: number, context: CallContext): void {
    const fields = { step: failure.step, kind: failure.kind, ...failure.details, attempts, durationMs, requestId: context.requestId };
    const message = `IDV ${failure.step} call failed: ${failure.message}`;
    // A refusal is an operator problem; a caller that left, an open circuit or a Retry-After hold
    // (each logged when it began) is not worth a line per request.
    const { cause } = failure.details;
    if (cause === 'cancelled' || cause === 'circuit-open' || cause === 'retry-after') this.logger.debug(fields, message);
    else if (failure.kind === 'unavailable') this.logger.warn(fields, message);
    else this.logger.error(fields, message);
  }

  /**
   * The failure of a call made only for a next step whose circuit is open (a device for a session),
   * or null. Only during the cool-down: the circuit turns half-open when a call of its own step
   * comes after it, so the call made for that one must go ahead then; and while the probe is out,
   * cockatiel holds the next step's other calls until it answers and lets them through if it
   * succeeds.
   */
  #openFor(step: IdvStep): IdvError | null {
    const next = MADE_FOR[step];
    if (next === undefined) return null;
    const breaker = this.#breakers[next];
    if (breaker.policy.state !== CircuitState.Open || Date.now() >= breaker.openedAt + this.settings.breakerCooldownMs) return null;
    return circuitOpen(step, this.#coolDownLeftSeconds(breaker), next);
  }

  #coolDownLeftSeconds(breaker: StepBreaker): number {
    const left = breaker.openedAt + this.settings.breakerCooldownMs - Date.now();
    return Math.max(1, Math.ceil(left / 1000));
  }

  #onStateChange(step: IdvStep, breaker: StepBreaker, state: CircuitState): void {
    const name = stateName(state);
    if (state === CircuitState.Open) {
      breaker.openedAt = Date.now();
      this.logger.error(
        { step, breaker: name, coolDownMs: this.settings.breakerCooldownMs },
        `IDV ${step} circuit opened after ${this.settings.breakerFailures} consecutive failures of that call; failing fast for the cool-down`,
      );
    } else if (state === CircuitState.HalfOpen) {
      this.logger.info({ step, breaker: name }, `IDV ${step} circuit half-open: probing with the next call`);
    } else if (state === CircuitState.Closed) {
      this.logger.info({ step, breaker: name }, `IDV ${step} circuit closed: the platform answers again`);
    }
    this.observer.breakerState?.(this.breakerState);
  }
}

function circuitOpen(step: IdvStep, retryAfterSeconds: number, openStep: IdvStep = step): IdvError {
  const which = openStep === step ? '' : ` (the ${openStep} call's, which this call is made for)`;
  return new IdvError('unavailable', step, `circuit open${which}: not calling the platform during the cool-down`, { cause: 'circuit-open', retryAfterSeconds });
}

function stateName(state: CircuitState): BreakerState {
  if (state === CircuitState.Open || state === CircuitState.Isolated) return 'open';
  if (state === CircuitState.HalfOpen) return 'half-open';
  return 'closed';
}
