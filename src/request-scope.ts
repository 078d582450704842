/**
 * Per-request state: the request id (echoed to the client, sent upstream, written on the request's
 * log lines) and the upstream calls made for it (for the one-line operation log).
 *
 * Handed down explicitly, never through an AsyncLocalStorage: the GraphQL context carries the
 * scope, and the data source gets the id and the call list in its CallContext. On Node 20 an
 * AsyncLocalStorage in use turns on a promise hook for every promise in the process; with one the
 * gateway spent 8 % more CPU per mutation and its p50 was 0.8 ms higher at 300/s (README,
 * Performance).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler, Response } from 'express';
import type { UpstreamCall } from './idv/platform.js';

export interface RequestScope {
  readonly requestId: string;
  /**
   * performance.now() when the gateway began handling the request (its headers read): where the
   * operation's logged and measured duration starts, so that the token check, which runs before
   * Apollo's own start, is in it.
   */
  readonly started: number;
  /** Every upstream call made for this request, in order (each attempt, once retries exist). */
  readonly upstream: UpstreamCall[];
  /** The workflow startVerification was asked for (the default when none), once the resolver has run. */
  workflow: string | null;
}

// What a caller's x-request-id may be; anything else is replaced by a generated id.
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Accepts a valid x-request-id or makes one, and echoes it in the response: the scope of a new request. */
export function openRequestScope(req: IncomingMessage, res: ServerResponse): RequestScope {
  const incoming = req.headers['x-request-id'];
  const requestId = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  res.setHeader('x-request-id', requestId);
  return { requestId, started: performance.now(), upstream: [], workflow: null };
}

/** The Express routes' entry: opens the scope and keeps it on the response for the error handler. */
export function requestScope(): RequestHandler {
  return (req, res, next) => {
    (res.locals as { requestScope?: RequestScope }).requestScope = openRequestScope(req, res);
    next();
  };
}

/** The scope `requestScope()` opened for this response, if it ran. */
export function scopeOf(res: Response): RequestScope | undefined {
  return (res.locals as { requestScope?: RequestScope }).requestScope;
}
