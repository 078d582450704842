/**
 * The ways a handoff is obtained from the IDV platform (IDV_FLOW), per ../shared/idv-contract.md:
 * - `ephemeral`: an ephemeral device, then a session with its token (the original guide, steps 2-4);
 * - `deeplink`: the newer one-call variant, which returns the mobile URL itself;
 * - `auto`: the one-call variant where the platform has it, the two-step flow where it answers
 *   404 or 405 for that path (an older version). The choice is made once per process.
 */
import type { Logger } from 'pino';
import type { IdvFlow } from './config.js';
import { buildHandoffUrls, handoffUrlsFor, type HandoffUrls } from './handoff.js';
import { IdvError, type CallContext, type IdvPlatform } from './idv/platform.js';

export type ConcreteFlow = Exclude<IdvFlow, 'auto'>;

export interface SessionRequest {
  readonly workflowId: string;
  readonly externalUserId: string;
  /** A canonical BCP 47 tag; absent means the platform's default. */
  readonly locale?: string;
}

export interface StartedHandoff extends HandoffUrls {
  readonly sessionId: string;
  readonly expiresAt: Date;
}

export interface FlowSettings {
  readonly flow: IdvFlow;
  readonly tokenTtlSeconds: number;
  /** Where the two-step flow builds its URLs; the one-call flow uses the platform's own URL. */
  readonly publicUrl: string;
}

/** For readiness: the configured flow, and the one in use (null while `auto` has not decided yet). */
export interface FlowStatus {
  readonly configured: IdvFlow;
  readonly active: ConcreteFlow | null;
}

export class HandoffFlows {
  #active: ConcreteFlow | null;

  constructor(
    private readonly idv: IdvPlatform,
    private readonly settings: FlowSettings,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.#active = settings.flow === 'auto' ? null : settings.flow;
  }

  get status(): FlowStatus {
    return { configured: this.settings.flow, active: this.#active };
  }

  start(request: SessionRequest, context: CallContext): Promise<StartedHandoff> {
    switch (this.#active) {
      case 'ephemeral':
        return this.#twoStep(request, context);
      case 'deeplink':
        return this.#oneCall(request, context);
      case null:
        return this.#discover(request, context);
    }
  }

  async #twoStep(request: SessionRequest, context: CallContext): Promise<StartedHandoff> {
    const ttl = this.settings.tokenTtlSeconds;
    // Taken before the device exists, so the reported expiry is never later than the real one.
    const expiresAt = new Date(this.now() + ttl * 1000);
    const device = await this.idv.createEphemeralDevice(ttl, context);
    const session = await this.idv.startSession({ token: device.authorization, ...request }, context);
    const urls = buildHandoffUrls(this.settings.publicUrl, device.authorization, session.id);
    return { sessionId: session.id, ...urls, expiresAt };
  }

  async #oneCall(request: SessionRequest, context: CallContext): Promise<StartedHandoff> {
    // Never repeated: like the session step, every call starts a session.
    const deeplink = await this.idv.createDeeplink({ ...request, ttlSeconds: this.settings.tokenTtlSeconds }, context);
    return { sessionId: deeplink.sessionId, ...handoffUrlsFor(deeplink.url), expiresAt: deeplink.expiresAt };
  }

  /**
   * `auto` before the platform has shown which flow it has. Only "this path does not exist"
   * (404, 405) switches flows; any other failure is the caller's answer, as in the chosen flow.
   * The two-step flow is only remembered once it has worked: a 404 can also mean an unknown
   * workflow id, and that must not pin a newer platform to the slower flow for good.
   */
  async #discover(request: SessionRequest, context: CallContext): Promise<StartedHandoff> {
    let handoff: StartedHandoff;
    try {
      handoff = await this.#oneCall(request, context);
    } catch (error) {
      if (!(error instanceof IdvError && lacksDeeplink(error))) throw error;
      const fallback = await this.#twoStep(request, context);
      this.#settle('ephemeral', error.details.status);
      return fallback;
    }
    this.#settle('deeplink');
    return handoff;
  }

  #settle(flow: ConcreteFlow, status?: number): void {
    // Concurrent first requests may all get here; the first one decides and logs.
    if (this.#active !== null) return;
    this.#active = flow;
    if (flow === 'deeplink') {
      this.logger.info({ idvFlow: flow }, 'IDV_FLOW=auto: the platform has the one-call deeplink; using it from now on');
    } else {
      this.logger.warn(
        { idvFlow: flow, status },
        'IDV_FLOW=auto: the platform has no one-call deeplink (an older version); using the two-step flow from now on',
      );
    }
  }
}

function lacksDeeplink(error: IdvError): boolean {
  return error.step === 'deeplink' && error.kind === 'rejected' && (error.details.status === 404 || error.details.status === 405);
}
