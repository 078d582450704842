import type { WorkflowCatalog } from './config.js';
import { ErrorCode, gatewayError } from './errors.js';
import { buildHandoffUrls } from './handoff.js';
import { IdvError, type CallContext, type IdvPlatform } from './idv/platform.js';
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
  readonly tokenTtlSeconds: number;
  readonly publicUrl: string;
}

/**
 * The "Start verification" use case: one ephemeral device, one session bound to the caller,
 * one handoff. The caller's id comes only from their verified token, never from the input.
 */
export class VerificationService {
  constructor(
    private readonly idv: IdvPlatform,
    private readonly settings: VerificationSettings,
    private readonly now: () => number = Date.now,
  ) {}

  get workflowNames(): string[] {
    const { ids, defaultName } = this.settings.workflows;
    return [defaultName, ...[...ids.keys()].filter((name) => name !== defaultName)];
  }

  async start(caller: Caller, input: { workflow?: string | null }, context: CallContext = {}): Promise<IssuedHandoff> {
    const workflow = input.workflow ?? this.settings.workflows.defaultName;
    const workflowId = this.settings.workflows.ids.get(workflow);
    if (workflowId === undefined) {
      throw gatewayError(
        ErrorCode.BAD_USER_INPUT,
        `Unknown workflow. Use one of: ${this.workflowNames.join(', ')}, or omit "workflow" for the default.`,
        { extensions: { field: 'workflow' } },
      );
    }
    // Taken before the device exists, so the reported expiry is never later than the real one.
    const expiresAt = new Date(this.now() + this.settings.tokenTtlSeconds * 1000);
    try {
      const device = await this.idv.createEphemeralDevice(this.settings.tokenTtlSeconds, context);
      const session = await this.idv.startSession(
        { token: device.authorization, workflowId, externalUserId: caller.userId },
        context,
      );
      const urls = buildHandoffUrls(this.settings.publicUrl, device.authorization, session.id);
      return { sessionId: session.id, ...urls, expiresAt, workflow };
    } catch (error) {
      if (error instanceof IdvError) throw toClientError(error);
      throw error;
    }
  }
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
