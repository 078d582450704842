import type { Caller } from '../auth.js';
import type { GatewayContext } from '../context.js';

/** The verified caller, or the request's authentication error (401 UNAUTHENTICATED / AUTH_UNAVAILABLE). */
export function requireCaller(context: GatewayContext): Caller {
  if (!context.auth.ok) throw context.auth.error;
  return context.auth.caller;
}
