import type { WorkflowCatalog } from './config.js';
import { ErrorCode, gatewayError } from './errors.js';
import type { FlowStatus, HandoffFlows } from './flows.js';
import { IdvError, mayHaveCreatedSession, type CallContext } from './idv/platform.js';
import type { UpstreamGuard } from './idv/upstream-guard.js';
import { canonicalLocale } from './locale.js';
import type { Caller } from './auth.js';

export interface IssuedHandoff {
  readonly sessionId: string;
  readonly captureUrl: string;
  readonly mobileUrl: string;
  readonly expiresAt: Date;
  readonly workflow: string;
}

export interface VerificationSettings {
  readonly workflows: WorkflowCatalog;
}

export interface VerificationInput {
  readonly workflow?: string | null;
  readonly locale?: string | null;
}

export interface ResolvedVerification {
  /** The workflow name, the default applied. */
  readonly workflow: string;
  readonly workflowId: string;
  /** The canonical BCP 47 tag; undefined for the platform's default. */
  readonly locale: string | undefined;
}

/**
 * The "Start verification" use case: one session bound to the caller, one handoff, through the
 * configured flow (see flows.ts). The caller's id comes only from their verified token, never
 * from the input.
 */
export class VerificationService {
  constructor(
    private readonly flows: HandoffFlows,
    private readonly settings: VerificationSettings,
    private readonly guard: UpstreamGuard,
  ) {}

  /** Which upstream flow is in use, for readiness. */
  get flowStatus(): FlowStatus {
    return this.flows.status;
  }

  get workflowNames(): string[] {
    const { ids, defaultName } = this.settings.workflows;
    return [defaultName, ...[...ids.keys()].filter((name) => name !== defaultName)];
  }

  /**
   * Checks the input and applies the defaults: the parameters a start really runs with, which
   * the duplicate guard (idempotency.ts) compares. Throws BAD_USER_INPUT without any upstream call.
   */
  resolve(input: VerificationInput): ResolvedVerification {
    const workflow = input.workflow ?? this.settings.workflows.defaultName;
    const workflowId = this.settings.workflows.ids.get(workflow);
    if (workflowId === undefined) {
      throw gatewayError(
        ErrorCode.BAD_USER_INPUT,
        `Unknown workflow. Use one of: ${this.workflowNames.join(', ')}, or omit "workflow" for the default.`,
        { extensions: { field: 'workflow' } },
      );
    }
    const locale = input.locale == null ? undefined : canonicalLocale(input.locale);
    if (locale === null) {
      throw gatewayError(
        ErrorCode.BAD_USER_INPUT,
        'Invalid locale. Use a BCP 47 language tag such as "en" or "de-CH", or omit "locale".',
        { extensions: { field: 'locale' } },
      );
    }
    return { workflow, workflowId, locale };
  }

  /** Starts a session for input already checked by resolve(). */
  async start(caller: Caller, resolved: ResolvedVerification, context: CallContext = {}): Promise<IssuedHandoff> {
    const { workflow, workflowId, locale } = resolved;
    try {
      const request = { workflowId, externalUserId: caller.userId, locale };
      const handoff = await this.guard.run(context, (guarded) => this.flows.start(request, guarded));
      return { ...handoff, workflow };
    } catch (error) {
      if (!(error instanceof IdvError)) throw error;
      const clientError = toClientError(error);
      if (!mayHaveCreatedSession(error)) withoutSession.add(clientError);
      throw clientError;
    }
  }
}

// The client errors of failed starts that cannot have created a session (see costsNoSession).
const withoutSession = new WeakSet<object>();

/**
 * Whether `error`, thrown by VerificationService.start, comes from a start that provably created
 * no session upstream: refused by the gateway's own guards, never sent, or refused by the
 * platform. The per-caller limit gives such attempts back.
 */
export function costsNoSession(error: unknown): boolean {
  return typeof error === 'object' && error !== null && withoutSession.has(error);
}

/** Maps an upstream failure to what the client sees: a code, a fixed message, no upstream detail. */
export function toClientError(error: IdvError) {
  if (error.kind === 'unavailable') {
    const retryAfterSeconds = error.details.retryAfterSeconds;
    return gatewayError(
      ErrorCode.IDV_UNAVAILABLE,
      'The identity verification service is temporarily unavailable. Retry in a moment.',
      retryAfterSeconds === undefined ? {} : { extensions: { retryAfterSeconds } },
    );
  }
  return gatewayError(
    ErrorCode.IDV_FAILED,
    'The identity verification service could not start a verification. Retrying will not help; the gateway operator has been alerted in the logs.',
  );
}
