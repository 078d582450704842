import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { expressMiddleware } from '@as-integrations/express5';
import cors from 'cors';
import express, { type ErrorRequestHandler } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import type { Authenticate } from './auth.js';
import type { HttpSettings, OperationLimits } from './config.js';
import type { GatewayContext } from './context.js';
import { demoRouter, type DemoOptions } from './demo.js';
import { HttpDrain, type DrainResult } from './drain.js';
import { admission } from './admission.js';
import { APQ_TTL_SECONDS } from './state/apq-cache.js';
import { maskError } from './errors.js';
import { healthRoutes, type Readiness } from './health.js';
import { answerRequestError } from './http-answers.js';
import type { GatewayMetrics } from './metrics.js';
import { operationObserver } from './operation-log.js';
import { hideLimit, operationLimits } from './operation-limits.js';
import { httpMetrics, metricsRoute } from './ops-http.js';
import { reenterRequestScope, requestScope, requestScopeOf, runInScopeOf } from './request-scope.js';
import { resolvers } from './resolvers/index.js';
import { loadTypeDefs } from './schema.js';
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
  readonly app: express.Express;
  listen(port: number, host?: string | null): Promise<{ url: string; port: number }>;
  /** Requests in flight now (for the shutdown log). */
  readonly inFlight: number;
  /** Stops accepting connections at once, lets requests in flight finish for up to `graceMs`, then closes the rest. */
  stop(graceMs?: number): Promise<DrainResult>;
}

/** Apollo's default, for callers (tests) that stop without a configured grace period. */
const DEFAULT_GRACE_MS = 10_000;
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
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  const httpServer = http.createServer(app);
  const drain = new HttpDrain(httpServer);
  const limits = operationLimits(options.limits, production);

  const apollo = new ApolloServer<GatewayContext>({
    typeDefs: loadTypeDefs(),
    resolvers,
    introspection: !production,
    hideSchemaDetailsFromClientErrors: production,
    includeStacktraceInErrorResponses: false,
    validationRules: limits.validationRules,
    parseOptions: limits.parseOptions,
    allowBatchedHttpRequests: false,
    ...(options.apqCache ? { persistedQueries: { cache: options.apqCache, ttl: APQ_TTL_SECONDS } } : {}),
    csrfPrevention: true,
    // main.ts owns signal handling (graceful shutdown); Apollo's own handler would re-raise the signal.
    stopOnTerminationSignals: false,
    formatError: (formatted) => {
      const masked = maskError(formatted, logger);
      return production ? { ...masked, message: hideLimit(masked.message) } : masked;
    },
    plugins: [
      production
        ? ApolloServerPluginLandingPageDisabled()
        : ApolloServerPluginLandingPageLocalDefault({
            embed: true,
            document: EXAMPLE_OPERATION,
            ...(options.sandboxHeaders ? { headers: options.sandboxHeaders } : {}),
          }),
      ...limits.plugins,
      operationObserver({ logUserIds: options.logUserIds, metrics: options.metrics }),
    ],
  });
  await apollo.start();

  // First: every request gets its id (and log scope) and is counted, whatever happens next.
  app.use(requestScope(), httpMetrics(options.metrics));
  app.use(
    helmet({
      // Apollo Sandbox (development only) runs inline scripts from Apollo's CDN; the production API serves JSON only.
      contentSecurityPolicy: production ? { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } } : false,
    }),
  );
  app.use(healthRoutes(options.readiness));
  if (options.serveMetrics) app.get('/metrics', metricsRoute(options.metrics));
  app.use(
    '/graphql',
    cors({
      // Bearer tokens, not cookies: credentials are never allowed cross-origin.
      origin: options.http.corsOrigins === '*' ? '*' : [...options.http.corsOrigins],
      methods: ['GET', 'POST'],
      allowedHeaders: ['authorization', 'content-type', 'x-request-id', 'apollo-require-preflight', 'x-apollo-operation-name', 'apollographql-client-name', 'apollographql-client-version'],
      exposedHeaders: ['x-request-id'],
      maxAge: 600,
    }),
    (_req, res, next) => {
      // A handoff carries a live credential: no shared cache may keep it.
      res.setHeader('cache-control', 'no-store');
      next();
    },
    admission(options.admissionLimit),
    express.json({ limit: options.http.bodyLimitBytes }),
    reenterRequestScope(),
    expressMiddleware(apollo, {
      context: async ({ req, res }): Promise<GatewayContext> => {
        const scope = requestScopeOf(res);
        const controller = new AbortController();
        res.once('close', () => {
          if (!res.writableFinished) controller.abort();
        });
        return {
          auth: await options.authenticate(req.get('authorization')),
          verification: options.verification,
          logger,
          requestId: scope.requestId,
          scope,
          signal: controller.signal,
        };
      },
    }),
  );
  if (options.demo && !production) app.use('/demo', demoRouter(options.demo));
  app.use(httpErrorHandler(logger, options.http.bodyLimitBytes));

  return {
    app,
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host ?? undefined, () => {
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
    async stop(graceMs = DEFAULT_GRACE_MS) {
      const result = await drain.drain(graceMs);
      await apollo.stop();
      return result;
    },
  };
}

/**
 * Failures before GraphQL runs (malformed JSON, a body over the limit, a bad content encoding)
 * get a JSON answer in GraphQL's error shape instead of Express's HTML page.
 */
function httpErrorHandler(logger: Logger, bodyLimitBytes: number): ErrorRequestHandler {
  return (error: unknown, _req, res, next) => {
    if (res.headersSent) return next(error);
    // Body parsing ends outside the request's async scope: log in it again, for the request id.
    runInScopeOf(res, () => answerRequestError(res, error, logger, bodyLimitBytes));
  };
}
