/**
 * The GraphQL endpoint, served on the bare node:http server. Express, its JSON middleware and
 * Apollo's Express integration cost more CPU per request than the gateway's own work for a
 * mutation, so /graphql goes around them: this handler keeps what their chain did, in the same
 * order and with the same bytes out (request id, metrics, helmet's headers, CORS,
 * no-store, admission, body-parser's JSON, JSON error answers). Every other path is the Express
 * app's (server.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HeaderMap, type ApolloServer, type HTTPGraphQLRequest, type HTTPGraphQLResponse } from '@apollo/server';
import cors from 'cors';
import express from 'express';
import type { Logger } from 'pino';
import type { Admit } from './admission.js';
import type { GatewayContext } from './context.js';
import { acceptsGraphqlAnswer, answerRequestError, errorSummary, sendNotAcceptable, sendText } from './http-answers.js';
import { isLoopbackHost } from './local-host.js';
import type { GatewayMetrics } from './metrics.js';
import { observeHttpRequest } from './ops-http.js';
import { openRequestScope, type RequestScope } from './request-scope.js';
import { setHeaders, type Header, type Middleware } from './security-headers.js';

export interface RequestTarget {
  readonly pathname: string;
  /** The query string with its `?`, or empty: what Apollo reads a GET operation from. */
  readonly search: string;
}

export interface GraphqlHttpOptions {
  readonly apollo: ApolloServer<GatewayContext>;
  /** Apollo's context; called only for requests that run an operation (not for the landing page). */
  readonly context: (request: { req: IncomingMessage; res: ServerResponse; scope: RequestScope }) => Promise<GatewayContext>;
  /** Recorded once from helmet (security-headers.ts). */
  readonly securityHeaders: readonly Header[];
  readonly corsOrigins: readonly string[] | '*';
  readonly admit: Admit;
  readonly bodyLimitBytes: number;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
}

export type GraphqlHttpHandler = (req: IncomingMessage, res: ServerResponse, target: RequestTarget) => void;

// Where Express mounted the endpoint (`app.use('/graphql', …)`): the path in any letter case, or below it.
const GRAPHQL_PATH = /^\/graphql(?:\/|$)/i;

/** The request's target when it is for the GraphQL endpoint; null when it is for the Express app. */
export function graphqlTarget(url: string | undefined): RequestTarget | null {
  const target = splitTarget(url ?? '');
  return GRAPHQL_PATH.test(target.pathname) ? target : null;
}

/** Path and query string as Express's router (parseurl) split them: a fragment, if sent, is dropped. */
function splitTarget(url: string): RequestTarget {
  if (!url.startsWith('/')) return splitAbsoluteTarget(url);
  const hash = url.indexOf('#');
  const beforeHash = hash === -1 ? url : url.slice(0, hash);
  const query = beforeHash.indexOf('?');
  return query === -1 ? { pathname: beforeHash, search: '' } : { pathname: beforeHash.slice(0, query), search: beforeHash.slice(query) };
}

/** The absolute form (`GET http://host/graphql`), which a client sends to a proxy; `*` matches no path. */
function splitAbsoluteTarget(url: string): RequestTarget {
  try {
    const { pathname, search } = new URL(url);
    return { pathname, search };
  } catch {
    return { pathname: url, search: '' };
  }
}

export function graphqlHttpHandler(options: GraphqlHttpOptions): GraphqlHttpHandler {
  const { admit, logger, bodyLimitBytes } = options;
  const applyCors = corsFor(options.corsOrigins);
  // body-parser is connect middleware: on node's req and res it reads, inflates, limits and parses
  // exactly as it did under Express, and its errors carry the same statuses.
  const readJsonBody = express.json({ limit: bodyLimitBytes }) as unknown as Middleware;
  const fail = (res: ServerResponse, error: unknown, scope: RequestScope) => failRequest(res, error, logger, bodyLimitBytes, scope.requestId);

  const readAndExecute = (req: IncomingMessage, res: ServerResponse, target: RequestTarget, scope: RequestScope) => {
    // A handoff carries a live credential: no shared cache may keep it.
    res.setHeader('cache-control', 'no-store');
    // Apollo chooses the answer's media type only after running the operation: a startVerification
    // whose Accept takes no JSON type started a (paid) session, then answered 406 without its
    // handoff. The same 406, before anything runs. (GETs stay Apollo's: the landing page is one.)
    if (req.method === 'POST' && !acceptsGraphqlAnswer(req.headers.accept)) return sendNotAcceptable(res);
    if (!admit(req, res)) return;
    readJsonBody(req, res, (error) =>
      error ? fail(res, error, scope) : execute(options, req, res, target.search, scope).catch((cause: unknown) => fail(res, cause, scope)),
    );
  };

  return (req, res, target) => {
    const scope = openRequestScope(req, res);
    // Every path this handler serves is the GraphQL endpoint (/GraphQL, /graphql/… included).
    observeHttpRequest(options.metrics, 'graphql', res, scope.started);
    try {
      setHeaders(res, options.securityHeaders);
      // Answers preflights itself, before admission: they cost nothing and must keep answering.
      applyCors(req, res, (error) => (error ? fail(res, error, scope) : readAndExecute(req, res, target, scope)));
    } catch (error) {
      fail(res, error, scope);
    }
  };
}

function corsFor(origins: readonly string[] | '*'): Middleware {
  return cors({
    // Bearer tokens, not cookies: credentials are never allowed cross-origin.
    origin: origins === '*' ? '*' : [...origins],
    methods: ['GET', 'POST'],
    allowedHeaders: ['authorization', 'content-type', 'x-request-id', 'apollo-require-preflight', 'x-apollo-operation-name', 'apollographql-client-name', 'apollographql-client-version'],
    exposedHeaders: ['x-request-id'],
    maxAge: 600,
  });
}

async function execute(options: GraphqlHttpOptions, req: IncomingMessage, res: ServerResponse, search: string, scope: RequestScope): Promise<void> {
  const response = await options.apollo.executeHTTPGraphQLRequest({
    httpGraphQLRequest: apolloRequestOf(req, search),
    context: () => options.context({ req, res, scope }),
  });
  await writeApolloResponse(res, response);
}

/** The request as Apollo's Express integration handed it over: headers joined, method upper-cased, the parsed body. */
export function apolloRequestOf(req: IncomingMessage & { body?: unknown }, search: string): HTTPGraphQLRequest {
  const headers = new HeaderMap();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  return { method: (req.method ?? '').toUpperCase(), headers, search, body: req.body };
}

async function writeApolloResponse(res: ServerResponse, response: HTTPGraphQLResponse): Promise<void> {
  for (const [name, value] of response.headers) res.setHeader(name, value);
  res.statusCode = response.status ?? 200;
  if (response.body.kind === 'complete') {
    const type = res.getHeader('content-type');
    // The landing page (development only) embeds Sandbox's headers, the dev bearer token among
    // them; with CORS's '*' any web page could read it. No page needs it cross-origin, and only a
    // browser on this machine, by a loopback name (local-host.ts), gets it at all.
    if (typeof type === 'string' && type.startsWith('text/html')) {
      withoutCors(res);
      if (!isLoopbackHost(res.req.headers.host)) return refuseLandingPage(res);
    }
    // As Express's res.send did: a text answer names its charset (Apollo's landing page, text/html, does not).
    if (typeof type === 'string') res.setHeader('Content-Type', withUtf8Charset(type));
    sendText(res, response.body.string);
    return;
  }
  // Incremental delivery: each part as Apollo yields it.
  for await (const chunk of response.body.asyncIterator) res.write(chunk);
  res.end();
}

function refuseLandingPage(res: ServerResponse): void {
  res.statusCode = 403;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  sendText(res, 'Apollo Sandbox is served only to a browser on this machine (it may carry the development token): open it at http://localhost:<port>/graphql.\n');
}

function withoutCors(res: ServerResponse): void {
  res.removeHeader('access-control-allow-origin');
  res.removeHeader('access-control-expose-headers');
}

function withUtf8Charset(type: string): string {
  return /;\s*charset=/i.test(type) ? type : `${type}; charset=utf-8`;
}

/**
 * A JSON error answer when nothing was sent yet. Once the answer has begun, the connection is cut,
 * as Express's final handler did: the client must not take a truncated answer for a whole one.
 */
function failRequest(res: ServerResponse, error: unknown, logger: Logger, bodyLimitBytes: number, requestId: string): void {
  if (!res.headersSent) {
    answerRequestError(res, error, logger, bodyLimitBytes, requestId);
    return;
  }
  logger.error({ requestId, err: errorSummary(error) }, 'request failed after its answer began');
  res.destroy();
}

/** Aborted when the client goes away before its answer is complete, so the work done for it can stop. */
export function abortedOnClose(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}
