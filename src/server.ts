import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import express, { type ErrorRequestHandler } from 'express';
import type { Logger } from 'pino';
import type { Authenticate } from './auth.js';
import type { HttpSettings, OperationLimits } from './config.js';
import type { GatewayContext } from './context.js';
import { demoRouter, type DemoOptions } from './demo.js';
import { boundedDocumentStore } from './document-store.js';
import { HttpDrain, type DrainResult } from './drain.js';
import { admission, ConnectionArrivals } from './admission.js';
import { APQ_TTL_SECONDS } from './state/apq-cache.js';
import { maskError } from './errors.js';
import { abortedOnClose, graphqlHttpHandler, graphqlTarget } from './graphql-http.js';
import { healthRoutes, type Readiness } from './health.js';
import { answerClientError, answerRequestError, sendJson } from './http-answers.js';
import type { GatewayMetrics } from './metrics.js';
import { operationObserver, OperationsInFlight } from './operation-log.js';
import { hideLimit, operationLimits, withoutFalseSyntaxError } from './operation-limits.js';
import { httpMetrics, metricsRoute } from './ops-http.js';
import { requestScope, scopeOf } from './request-scope.js';
import { resolvers } from './resolvers/index.js';
import { loadTypeDefs } from './schema.js';
import { recordHeaders, securityHeaders } from './security-headers.js';
import type { KeyValueCache } from '@apollo/utils.keyvaluecache';
import type { GuardedVerification } from './idempotency.js';

export interface ServerOptions {
  readonly production: boolean;
  readonly http: HttpSettings;
  readonly limits: OperationLimits;
  readonly logUserIds: boolean;
  /** GraphQL requests in progress beyond which new ones are refused at the door (see admission.ts). */
  readonly admissionLimit: number;
  readonly logger: Logger;
  readonly authenticate: Authenticate;
  readonly metrics: GatewayMetrics;
  readonly readiness: Readiness;
  /** Serve /metrics here (false when METRICS_PORT gives it a listener of its own). */
  readonly serveMetrics: boolean;
  readonly verification: GuardedVerification;
  /** A shared APQ cache (Redis) so persisted queries work across instances; Apollo's in-memory one otherwise. */
  readonly apqCache?: KeyValueCache<string>;
  /** Headers Apollo Sandbox starts with in development, e.g. the dev bearer token. */
  readonly sandboxHeaders?: Record<string, string>;
  /** The /demo page; ignored in production. */
  readonly demo?: DemoOptions;
}

export interface GatewayServer {
  /** Every route but /graphql, which graphql-http.ts serves on the bare HTTP server. */
  readonly app: express.Express;
  listen(port: number, host?: string | null): Promise<{ url: string; port: number }>;
  /** Requests in flight now (for the shutdown log). */
  readonly inFlight: number;
  /**
   * Answers every request with `Connection: close` from now on, still accepting connections (the
   * shutdown delay, before stop); stop does it too.
   */
  announceClose(): void;
  /** Stops accepting connections at once, lets requests in flight finish for up to `graceMs`, then closes the rest. */
  stop(graceMs?: number): Promise<DrainResult>;
}

/** Apollo's default, for callers (tests) that stop without a configured grace period. */
const DEFAULT_GRACE_MS = 10_000;
// How long stop() waits, after the drain, for cut-off operations to write their log line.
const OPERATIONS_SETTLE_MS = 2000;
const EXAMPLE_OPERATION = `mutation StartVerification($input: StartVerificationInput) {
  startVerification(input: $input) {
    sessionId
    captureUrl
    mobileUrl
    expiresAt
    workflow
  }
}
`;

export async function createServer(options: ServerOptions): Promise<GatewayServer> {
  const { logger, production } = options;
  const limits = operationLimits(options.limits, production);

  const operations = new OperationsInFlight();
  const apollo = new ApolloServer<GatewayContext>({
    typeDefs: loadTypeDefs(),
    resolvers,
    introspection: !production,
    hideSchemaDetailsFromClientErrors: production,
    includeStacktraceInErrorResponses: false,
    validationRules: limits.validationRules,
    parseOptions: limits.parseOptions,
    // Sized by the heap a document holds, not its JSON: Apollo's default let comment-padded
    // documents, unauthenticated, grow it without bound (document-store.ts).
    documentStore: boundedDocumentStore(),
    allowBatchedHttpRequests: false,
    ...(options.apqCache ? { persistedQueries: { cache: options.apqCache, ttl: APQ_TTL_SECONDS } } : {}),
    csrfPrevention: true,
    // main.ts owns signal handling (graceful shutdown); Apollo's own handler would re-raise the signal.
    stopOnTerminationSignals: false,
    formatError: (formatted, error) => {
      const masked = maskError(formatted, error, logger);
      const message = withoutFalseSyntaxError(masked.message, masked.extensions?.code);
      return { ...masked, message: production ? hideLimit(message) : message };
    },
    plugins: [
      // Nothing sets cache hints, and every GraphQL answer is no-store: skip its per-field hooks.
      ApolloServerPluginCacheControlDisabled(),
      production
        ? ApolloServerPluginLandingPageDisabled()
        : ApolloServerPluginLandingPageLocalDefault({
            embed: true,
            document: EXAMPLE_OPERATION,
            ...(options.sandboxHeaders ? { headers: options.sandboxHeaders } : {}),
          }),
      ...limits.plugins,
      operationObserver({ logUserIds: options.logUserIds, metrics: options.metrics, inFlight: operations }),
    ],
  });
  await apollo.start();

  const httpServer = http.createServer({
    // A request holds an admission slot from its headers on; a client that sends its body slowly
    // (or never) must not keep it for node's default 300 s. Checked every second, not every 30.
    requestTimeout: options.http.requestTimeoutMs,
    headersTimeout: options.http.requestTimeoutMs,
    connectionsCheckingInterval: 1000,
    // RFC 9112 §3.2 refuses an HTTP/1.1 request without Host: node would with a bare 400; the
    // request listener below does it in the JSON error shape.
    requireHostHeader: false,
  });
  httpServer.on('clientError', answerClientError);
  const arrivals = new ConnectionArrivals(httpServer, options.http.maxAcceptWaitMs);
  const helmet = securityHeaders(production);
  const graphql = graphqlHttpHandler({
    apollo,
    context: async ({ req, res, scope }): Promise<GatewayContext> => ({
      auth: await options.authenticate(authorizationOf(req)),
      verification: options.verification,
      logger,
      requestId: scope.requestId,
      scope,
      signal: abortedOnClose(res),
    }),
    securityHeaders: recordHeaders(helmet),
    corsOrigins: options.http.corsOrigins,
    admit: admission(options.admissionLimit, arrivals),
    bodyLimitBytes: options.http.bodyLimitBytes,
    metrics: options.metrics,
    logger,
  });

  // Everything but GraphQL: health, metrics, the demo page, 404s.
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  // First: every request gets its id (and log scope) and is counted, whatever happens next.
  app.use(requestScope(), httpMetrics(options.metrics));
  app.use(helmet);
  app.use(healthRoutes(options.readiness));
  if (options.serveMetrics) app.get('/metrics', metricsRoute(options.metrics));
  if (options.demo && !production) app.use('/demo', demoRouter(options.demo));
  app.use(notFound);
  app.use(httpErrorHandler(logger, options.http.bodyLimitBytes));

  // GraphQL requests skip Express (graphql-http.ts says why).
  httpServer.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.headers.host === undefined && req.httpVersion === '1.1') return refuseWithoutHost(res);
    const target = graphqlTarget(req.url);
    if (target) graphql(req, res, target);
    else app(req, res);
  });
  const drain = new HttpDrain(httpServer);

  return {
    app,
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        httpServer.once('error', reject);
        // A burst of new connections larger than the accept queue is not refused but dropped by the
        // kernel, and each dropped handshake waits for TCP's retransmission (1 s, 3 s, 7 s, …)
        // before the gateway even sees it: Node's default queue of 511 made 5 000 taps at once
        // take up to 30 s. The kernel caps it at net.core.somaxconn.
        httpServer.listen({ port, host: host ?? undefined, backlog: options.http.listenBacklog }, () => {
          httpServer.off('error', reject);
          const address = httpServer.address() as AddressInfo;
          const shownHost = host && host !== '0.0.0.0' && host !== '::' ? host : 'localhost';
          const urlHost = shownHost.includes(':') ? `[${shownHost}]` : shownHost;
          resolve({ url: `http://${urlHost}:${address.port}/graphql`, port: address.port });
        });
      }),
    get inFlight() {
      return drain.inFlight;
    },
    announceClose: () => drain.announceClose(),
    async stop(graceMs = DEFAULT_GRACE_MS) {
      const result = await drain.drain(graceMs);
      // Requests cut off at the end of the grace period still finish their bookkeeping (their
      // upstream work is stopped), so the log says which request ids were cut and how.
      await operations.settle(OPERATIONS_SETTLE_MS);
      await apollo.stop();
      return result;
    },
  };
}

/**
 * The Authorization header(s) for authentication, which refuses several. Node keeps the first and
 * drops the rest, so when there is one its raw name is looked for again (names only, no value
 * copied); all the values (headersDistinct, built on access) only for a request that sent several.
 */
function authorizationOf(req: http.IncomingMessage): string | string[] | undefined {
  const header = req.headers.authorization;
  if (header === undefined || !severalAuthorizations(req.rawHeaders)) return header;
  return req.headersDistinct.authorization;
}

function severalAuthorizations(rawHeaders: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    // 'authorization'.length: most names are told apart without lower-casing them.
    if (name.length !== 13 || name.toLowerCase() !== 'authorization') continue;
    if (seen) return true;
    seen = true;
  }
  return false;
}

function refuseWithoutHost(res: http.ServerResponse): void {
  // Refused before any route could set helmet's headers or no-store: the two the parser's own
  // refusals carry (answerClientError), so that no error answer is sniffed or cached.
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Connection', 'close');
  sendJson(res, 400, { errors: [{ message: 'An HTTP/1.1 request needs a Host header.', extensions: { code: 'BAD_REQUEST', retryable: false } }] });
}

/** A path no route serves (`//graphql`, `/graphql.`, a typo): JSON in GraphQL's error shape, as every other answer, not Express's HTML page. */
const notFound: express.RequestHandler = (_req, res) => {
  sendJson(res, 404, {
    errors: [{ message: 'Nothing is served at this path: the GraphQL endpoint is /graphql.', extensions: { code: 'NOT_FOUND', retryable: false } }],
  });
};

/** Express's errors (a failed /metrics render, a bad demo asset path) get the JSON answer GraphQL's get, never an HTML page. */
function httpErrorHandler(logger: Logger, bodyLimitBytes: number): ErrorRequestHandler {
  return (error: unknown, _req, res, next) => {
    if (res.headersSent) return next(error);
    answerRequestError(res, error, logger, bodyLimitBytes, scopeOf(res)?.requestId);
  };
}
