/**
 * An IDV platform emulator for development and tests, built from ../shared/idv-contract.md
 * independently of the gateway's data source (its own parsing, its own types), so that a
 * misreading of the contract in one is not silently mirrored by the other.
 *
 * Besides the API it serves stand-ins for the hosted pages (/capture, /mobile: see pages.ts).
 *
 * Never used in production: the gateway only starts it when no IDV_BASE_URL is configured
 * outside production.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { capturePage, mobilePage, sendPage } from './pages.js';

export type EmulatedStep = 'device' | 'session' | 'health';

/** A way to misbehave, for one step, instead of the normal answer. */
export type Fault =
  | { readonly kind: 'status'; readonly status: number; readonly body?: string | object; readonly headers?: Record<string, string> }
  /** 200 with this JSON (e.g. a session without an id). */
  | { readonly kind: 'json'; readonly body: unknown; readonly status?: number }
  /** 200 with an HTML page, as a misrouted proxy would send. */
  | { readonly kind: 'html' }
  /** Never answers (until the emulator closes). */
  | { readonly kind: 'hang' }
  /** Answers normally, after a delay. */
  | { readonly kind: 'delay'; readonly ms: number }
  /** Destroys the connection before any response byte. */
  | { readonly kind: 'reset' }
  /** Sends the status line and headers, then destroys the connection mid-body. */
  | { readonly kind: 'truncated' };

export interface RecordedRequest {
  readonly step: EmulatedStep | 'unknown';
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly headers: Readonly<http.IncomingHttpHeaders>;
  readonly body: string;
}

export interface EmulatedSession {
  readonly id: string;
  readonly workflowId: string;
  readonly metadata: Record<string, unknown>;
  readonly token: string;
  readonly createdAt: string;
}

export interface EmulatorOptions {
  readonly apiKey: string;
  /** The auth scheme the emulator expects before the key; null for the bare key of the original guide. */
  readonly apiKeyScheme?: string | null;
  readonly workflowIds: readonly string[];
  readonly port?: number;
  readonly host?: string;
  /** Fixed latency added to every API answer, e.g. to emulate a remote platform. */
  readonly latencyMs?: number;
}

export interface IdvEmulator {
  readonly url: string;
  /** Every request received, in order (tests assert on exact upstream traffic). */
  readonly requests: RecordedRequest[];
  readonly sessions: ReadonlyMap<string, EmulatedSession>;
  /** Makes the next `times` calls of a step misbehave (Infinity: until cleared). */
  inject(step: EmulatedStep, fault: Fault, times?: number): void;
  clearFaults(): void;
  /** Forgets recorded requests (sessions and tokens stay valid). */
  resetRecords(): void;
  /** Makes every issued token expire now. */
  expireTokens(): void;
  callCount(step: EmulatedStep): number;
  close(): Promise<void>;
}

const TTL_MIN = 60;
const TTL_MAX = 86_400;
const MAX_BODY_BYTES = 1024 * 1024;

interface IssuedToken {
  expiresAt: number;
}

export async function startEmulator(options: EmulatorOptions): Promise<IdvEmulator> {
  const expectedApiKey = options.apiKeyScheme ? `${options.apiKeyScheme} ${options.apiKey}` : options.apiKey;
  const workflows = new Set(options.workflowIds);
  const tokens = new Map<string, IssuedToken>();
  const sessions = new Map<string, EmulatedSession>();
  const requests: RecordedRequest[] = [];
  const faults = new Map<EmulatedStep, { fault: Fault; remaining: number }[]>();
  const counts = new Map<EmulatedStep, number>();
  const sockets = new Set<Socket>();
  const pendingTimers = new Set<NodeJS.Timeout>();

  function takeFault(step: EmulatedStep): Fault | undefined {
    const queue = faults.get(step);
    const head = queue?.[0];
    if (!queue || !head) return undefined;
    head.remaining -= 1;
    if (head.remaining <= 0) queue.shift();
    return head.fault;
  }

  function later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      pendingTimers.delete(timer);
      fn();
    }, ms);
    pendingTimers.add(timer);
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://emulator');
      const body = Buffer.concat(chunks).toString('utf8');
      const step = stepOf(req.method ?? '', url.pathname);
      requests.push({
        step: step ?? 'unknown',
        method: req.method ?? '',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        body,
      });
      if (step) counts.set(step, (counts.get(step) ?? 0) + 1);
      if (size > MAX_BODY_BYTES) return sendJson(res, 413, { message: 'Payload too large' });
      const fault = step ? takeFault(step) : undefined;
      const answer = () => route(step, req, url, body, res);
      if (!fault) return options.latencyMs ? later(options.latencyMs, answer) : answer();
      applyFault(fault, res, answer);
    });
  });
  server.keepAliveTimeout = 5000;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  function applyFault(fault: Fault, res: http.ServerResponse, answer: () => void): void {
    switch (fault.kind) {
      case 'status': {
        const isText = typeof fault.body === 'string';
        const payload = fault.body === undefined ? '' : isText ? (fault.body as string) : JSON.stringify(fault.body);
        res.writeHead(fault.status, {
          'content-type': isText ? 'text/plain' : 'application/json',
          'content-length': Buffer.byteLength(payload),
          ...fault.headers,
        });
        res.end(payload);
        return;
      }
      case 'json':
        return sendJson(res, fault.status ?? 200, fault.body);
      case 'html': {
        const page = '<!doctype html><html><body><h1>Welcome</h1></body></html>';
        res.writeHead(200, { 'content-type': 'text/html', 'content-length': Buffer.byteLength(page) });
        res.end(page);
        return;
      }
      case 'hang':
        return;
      case 'delay':
        return later(fault.ms, answer);
      case 'reset':
        res.socket?.destroy();
        return;
      case 'truncated':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 200 });
        res.write('{"authorization": "Tok');
        later(5, () => res.socket?.destroy());
        return;
    }
  }

  function route(step: EmulatedStep | undefined, req: http.IncomingMessage, url: URL, body: string, res: http.ServerResponse): void {
    switch (step) {
      case 'health':
        return sendJson(res, 200, { status: 'ok' });
      case 'device':
        return createDevice(req, body, res);
      case 'session':
        return createSession(req, url, body, res);
      default:
        return hostedPage(req, url, res);
    }
  }

  function hostedPage(req: http.IncomingMessage, url: URL, res: http.ServerResponse): void {
    if (req.method === 'GET' && url.pathname === '/capture') {
      capturePage(req, url).then(
        (answer) => sendPage(res, answer),
        () => sendJson(res, 500, { message: 'Internal error' }),
      );
      return;
    }
    if (req.method === 'GET' && url.pathname === '/mobile') {
      // Opened with the same token the session was started with, while it is still valid.
      const token = url.searchParams.get('authorization') ?? '';
      const session = sessions.get(url.searchParams.get('sessionId') ?? '');
      const issued = tokens.get(token);
      const valid = session && issued && issued.expiresAt > Date.now() && session.token === token;
      return sendPage(res, mobilePage(valid ? { sessionId: session.id, workflowId: session.workflowId } : null));
    }
    sendJson(res, 404, { message: 'Not found' });
  }

  function createDevice(req: http.IncomingMessage, body: string, res: http.ServerResponse): void {
    if (req.headers.authorization !== expectedApiKey) return sendJson(res, 401, { message: 'Unauthorized' });
    if (!isJsonRequest(req)) return sendJson(res, 415, { message: 'Expected application/json' });
    const parsed = parseObject(body);
    const ttl = parsed?.ttl;
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < TTL_MIN || ttl > TTL_MAX) {
      return sendJson(res, 400, { message: `ttl must be an integer from ${TTL_MIN} to ${TTL_MAX}` });
    }
    // Shaped like real tokens ("Token tr-…"): a space inside, so the URL encoding is exercised.
    const token = `Token tr-${randomBytes(18).toString('base64url').toLowerCase()}`;
    tokens.set(token, { expiresAt: Date.now() + ttl * 1000 });
    sendJson(res, 200, { authorization: token });
  }

  function createSession(req: http.IncomingMessage, url: URL, body: string, res: http.ServerResponse): void {
    const token = req.headers.authorization ?? '';
    const issued = tokens.get(token);
    if (!issued || issued.expiresAt <= Date.now()) return sendJson(res, 401, { message: 'Invalid or expired token' });
    if (!isJsonRequest(req)) return sendJson(res, 415, { message: 'Expected application/json' });
    const workflowId = url.searchParams.get('workflowId');
    if (!workflowId || !workflows.has(workflowId)) return sendJson(res, 404, { message: 'Workflow not found' });
    const parsed = parseObject(body);
    const metadata = parsed?.metadata;
    if (parsed === undefined || (metadata !== undefined && (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)))) {
      return sendJson(res, 400, { message: 'Invalid body' });
    }
    const id = randomBytes(12).toString('hex');
    const session: EmulatedSession = {
      id,
      workflowId,
      metadata: (metadata ?? {}) as Record<string, unknown>,
      token,
      createdAt: new Date().toISOString(),
    };
    sessions.set(id, session);
    sendJson(res, 200, { id, workflowId, status: 0, metadata: session.metadata, createdAt: session.createdAt });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  return {
    url: `http://${host}:${address.port}`,
    requests,
    sessions,
    inject(step, fault, times = 1) {
      const queue = faults.get(step) ?? [];
      queue.push({ fault, remaining: times });
      faults.set(step, queue);
    },
    clearFaults: () => faults.clear(),
    resetRecords() {
      requests.length = 0;
      counts.clear();
    },
    expireTokens() {
      for (const issued of tokens.values()) issued.expiresAt = 0;
    },
    callCount: (step) => counts.get(step) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of pendingTimers) clearTimeout(timer);
        pendingTimers.clear();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

function stepOf(method: string, path: string): EmulatedStep | undefined {
  if (method === 'GET' && path === '/api/health') return 'health';
  if (method === 'POST' && path === '/api/device/ephemeral') return 'device';
  if (method === 'POST' && path === '/api/sessions') return 'session';
  return undefined;
}

function isJsonRequest(req: http.IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json');
}

function parseObject(body: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}
