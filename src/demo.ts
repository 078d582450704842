import { existsSync } from 'node:fs';
import path from 'node:path';
import express from 'express';
import { isLoopbackHost } from './local-host.js';

export interface DemoOptions {
  /** The built page (Vite's output: index.html and assets/). */
  readonly dir: string;
  /** The development bearer token the page signs in with; null when the gateway has none (JWKS). */
  readonly devToken: string | null;
}

/**
 * The /demo page, for development only: the caller (createServer) never mounts it in production,
 * because it hands out the development token, and then only to a browser that reached it by a
 * loopback name (local-host.ts).
 */
export function demoRouter(options: DemoOptions): express.Router {
  const router = express.Router();
  router.use((_req, res, next) => {
    res.setHeader('content-security-policy', "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    next();
  });
  router.get('/config.json', (req, res) => {
    res.setHeader('cache-control', 'no-store');
    res.json({ token: isLoopbackHost(req.headers.host) ? options.devToken : null });
  });
  if (existsSync(path.join(options.dir, 'index.html'))) {
    router.use(express.static(options.dir, { index: 'index.html' }));
  } else {
    router.use((_req, res) => {
      res.status(404).type('text/plain').send('The demo page is not built: run `npm run build`, or `npm start`, which builds it.\n');
    });
  }
  return router;
}
