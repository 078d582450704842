/**
 * Per-request state that code deep below the resolvers needs without threading it through every
 * call: the request id (for every log line of the request, the data source's included: see the
 * logger's mixin) and the upstream calls made for it (for the one-line operation log).
 *
 * Carried in an AsyncLocalStorage, entered by the GraphQL handler (graphql-http.ts) or by an Express
 * middleware for the other routes. Body parsing reads the socket through stream events, which run
 * outside the request's async context, so the GraphQL handler enters the scope again after it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler, Response } from 'express';
import type { UpstreamStatus, UpstreamStep } from './metrics.js';

export interface UpstreamTiming {
  readonly step: UpstreamStep;
  /** The HTTP status, or the network error code when there was no answer. */
  readonly status: number | string;
  readonly ms: number;
}

export interface RequestScope {
  readonly requestId: string;
  /** Every upstream call made for this request, in order (each attempt, once retries exist). */
  readonly upstream: UpstreamTiming[];
  /** The workflow startVerification was asked for (the default when none), once the resolver has run. */
  workflow: string | null;
}

const storage = new AsyncLocalStorage<RequestScope>();

// What a caller's x-request-id may be; anything else is replaced by a generated id.
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The scope of the request being handled here, if any. */
export function currentRequestScope(): RequestScope | undefined {
  return storage.getStore();
}

/** Records an upstream call in the current request's scope (a no-op outside a request). */
export function recordUpstreamCall(step: UpstreamStep, status: UpstreamStatus, ms: number): void {
  storage.getStore()?.upstream.push({ step, status: typeof status === 'number' ? status : status.errorCode, ms: Math.round(ms) });
}

/** Accepts a valid x-request-id or makes one, and echoes it in the response: the scope of a new request. */
export function openRequestScope(req: IncomingMessage, res: ServerResponse): RequestScope {
  const incoming = req.headers['x-request-id'];
  const requestId = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  res.setHeader('x-request-id', requestId);
  return { requestId, upstream: [], workflow: null };
}

/** Runs `fn` in the request's scope: from the start, and again where a stream event lost it. */
export function runInRequestScope<T>(scope: RequestScope, fn: () => T): T {
  return storage.run(scope, fn);
}

/** The Express routes' entry: opens the scope, keeps it for the error handler, and runs the rest in it. */
export function requestScope(): RequestHandler {
  return (req, res, next) => {
    const scope = openRequestScope(req, res);
    (res.locals as { requestScope?: RequestScope }).requestScope = scope;
    storage.run(scope, next);
  };
}

/** Runs `fn` in the response's request scope, e.g. in an error handler reached outside it. */
export function runInScopeOf<T>(res: Response, fn: () => T): T {
  const scope = (res.locals as { requestScope?: RequestScope }).requestScope;
  return scope ? storage.run(scope, fn) : fn();
}
