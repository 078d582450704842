import type { Logger } from 'pino';
import type { AuthResult } from './auth.js';
import type { VerificationService } from './verification.js';

/** Per-request state handed to resolvers. */
export interface GatewayContext {
  /** Who is calling: verified once per request, checked by the resolvers that need a caller. */
  readonly auth: AuthResult;
  readonly verification: VerificationService;
  readonly logger: Logger;
  readonly requestId: string;
  /** Aborted when the client disconnects before the answer is sent. */
  readonly signal: AbortSignal;
}
