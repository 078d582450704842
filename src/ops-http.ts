/**
 * The operations endpoints over HTTP: request metrics for every route, GET /metrics, and the
 * optional separate listener (METRICS_PORT) that serves /metrics, /healthz and /readyz apart from
 * the public API, so the metrics need not be reachable by API clients and the probes keep
 * answering while the main listener drains.
 */
import http, { type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type RequestHandler } from 'express';
import { healthRoutes, type Readiness } from './health.js';
import type { GatewayMetrics, HttpRoute } from './metrics.js';
import { requestScope } from './request-scope.js';

const ROUTES: Readonly<Record<string, HttpRoute>> = {
  '/graphql': 'graphql',
  '/healthz': 'healthz',
  '/readyz': 'readyz',
  '/metrics': 'metrics',
};

/** A bounded label for a path: the known routes, `demo` for the demo page and its assets, else `other`. */
export function routeOf(path: string): HttpRoute {
  return ROUTES[path] ?? (path === '/demo' || path.startsWith('/demo/') ? 'demo' : 'other');
}

/**
 * Counts the request by route and status once its response closes, and times it from `started`
 * (performance.now(); by default, now): `aborted` if it never finished.
 */
export function observeHttpRequest(metrics: GatewayMetrics, route: HttpRoute, res: ServerResponse, started = performance.now()): void {
  res.once('close', () => {
    metrics.httpRequest(route, res.writableFinished ? res.statusCode : 'aborted', (performance.now() - started) / 1000);
  });
}

/** Counts every request Express answers (the GraphQL handler calls observeHttpRequest itself). */
export function httpMetrics(metrics: GatewayMetrics): RequestHandler {
  return (req, res, next) => {
    observeHttpRequest(metrics, routeOf(req.path), res);
    next();
  };
}

export function metricsRoute(metrics: GatewayMetrics): RequestHandler {
  return async (_req, res, next) => {
    try {
      const body = await metrics.render();
      res.setHeader('cache-control', 'no-store');
      res.type(metrics.contentType).send(body);
    } catch (error) {
      next(error);
    }
  };
}

export interface AdminServer {
  readonly url: string;
  close(): Promise<void>;
}

/** The METRICS_PORT listener: /metrics, /healthz and /readyz only. */
export async function startAdminServer(options: {
  port: number;
  host: string | null;
  readiness: Readiness;
  metrics: GatewayMetrics;
}): Promise<AdminServer> {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  // Request ids on this port too (README, "Request ids": on every route).
  app.use(requestScope(), httpMetrics(options.metrics));
  app.use(healthRoutes(options.readiness));
  app.get('/metrics', metricsRoute(options.metrics));
  app.use((_req, res) => {
    res.status(404).type('text/plain').send('Not found: this port serves /metrics, /healthz and /readyz.\n');
  });
  const server = http.createServer(app);
  // Scrapers and probes open short connections; none should hold the process open at exit.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? undefined, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = options.host && options.host !== '0.0.0.0' && options.host !== '::' ? options.host : 'localhost';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
