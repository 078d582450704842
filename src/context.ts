import type { Logger } from 'pino';
import type { AuthResult } from './auth.js';
import type { GuardedVerification } from './idempotency.js';
import type { RequestScope } from './request-scope.js';

/** Per-request state handed to resolvers. */
export interface GatewayContext {
  /** Who is calling: verified once per request, checked by the resolvers that need a caller. */
  readonly auth: AuthResult;
  readonly verification: GuardedVerification;
  /** The process's logger: a line about this request names `requestId` itself. */
  readonly logger: Logger;
  readonly requestId: string;
  /** What the operation log reports: the workflow asked for and the upstream calls made. */
  readonly scope: RequestScope;
  /** Aborted when the client disconnects before the answer is sent. */
  readonly signal: AbortSignal;
}
