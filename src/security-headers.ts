/**
 * The security headers every answer carries, from helmet: Express runs it per request, the GraphQL
 * handler sets the headers it recorded once at start-up (they never depend on the request), so
 * helmet stays the one place that decides them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';

export type Header = readonly [name: string, value: string | number | readonly string[]];
/** Connect middleware (helmet, cors, body-parser): node's req and res, and a callback. */
export type Middleware = (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void;

export function securityHeaders(production: boolean): Middleware {
  return helmet({
    // Apollo Sandbox (development only) runs inline scripts from Apollo's CDN; the production API serves JSON only.
    // Without useDefaults: false helmet merges in its own directives for HTML pages (script-src 'self',
    // style-src 'unsafe-inline', upgrade-insecure-requests, …), which would allow more than 'none' to
    // a page production never serves. frame-ancestors is kept: it does not fall back to default-src.
    contentSecurityPolicy: production ? { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } } : false,
  });
}

/**
 * The headers `middleware` sets, in order, run once against a recording response. Only for headers
 * that do not depend on the request, as helmet's are with the options above (no CSP nonce); throws
 * unless the middleware finishes at once, without error.
 */
export function recordHeaders(middleware: Middleware): readonly Header[] {
  const headers = new Map<string, Header>();
  const recorder = {
    setHeader(name: string, value: Header[1]) {
      headers.set(name.toLowerCase(), [name, value]);
      return recorder;
    },
    removeHeader(name: string) {
      headers.delete(name.toLowerCase());
    },
  };
  let finished = false;
  middleware({ headers: {} } as IncomingMessage, recorder as unknown as ServerResponse, (error) => {
    if (error) throw error;
    finished = true;
  });
  if (!finished) throw new Error('the security headers middleware did not finish at once');
  return [...headers.values()];
}

export function setHeaders(res: ServerResponse, headers: readonly Header[]): void {
  for (const [name, value] of headers) res.setHeader(name, value);
}
