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

export type EmulatedStep = 'device' | 'session' | 'deeplink' | 'health';

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
  /**
   * Answers once `until` settles: lets a test hold a call open while it lines up concurrent ones.
   * Normally, or with the fault `then`.
   */
  | { readonly kind: 'hold'; readonly until: Promise<unknown>; readonly then?: Fault }
  /** Destroys the connection before any response byte. */
  | { readonly kind: 'reset' }
  /** Sends the status line and headers, then destroys the connection mid-body. */
  | { readonly kind: 'truncated' }
  /** 200 with a JSON body of this many bytes (the contract's answers are a few hundred). */
  | { readonly kind: 'oversized'; readonly bytes: number };

export interface RecordedRequest {
  readonly step: EmulatedStep | 'unknown';
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly headers: Readonly<http.IncomingHttpHeaders>;
  readonly body: string;
  /** When the request's body had arrived (epoch ms). */
  readonly receivedAt: number;
}

export interface EmulatedSession {
  readonly id: string;
  readonly workflowId: string;
  readonly metadata: Record<string, unknown>;
  /** As the request sent it; undefined when absent. */
  readonly locale?: string | null;
  readonly token: string;
  readonly createdAt: string;
  /** How it was started: the two-step flow or the one-call deeplink. */
  readonly via: 'session' | 'deeplink';
}

export interface EmulatorOptions {
  readonly apiKey: string;
  /**
   * The auth scheme the emulator expects before the key. Null: the device call takes the bare key
   * (the original guide) and the deeplink call "ApiKey <key>" (its docs).
   */
  readonly apiKeyScheme?: string | null;
  readonly workflowIds: readonly string[];
  readonly port?: number;
  readonly host?: string;
  /** Fixed latency added to every API answer, e.g. to emulate a remote platform. */
  readonly latencyMs?: number;
  /** False emulates an older platform version without the one-call deeplink (it answers 404). */
  readonly deeplink?: boolean;
  /**
   * False for load generation: no request log, no session store, and a device token is forgotten
   * once its session is started (the hosted /mobile page then refuses every link). Otherwise
   * memory grows with every call, and so would the emulator's cost per call. Default true.
   */
  readonly record?: boolean;
}

export interface IdvEmulator {
  readonly url: string;
  /** Every request received, in order (tests assert on exact upstream traffic). */
  readonly requests: RecordedRequest[];
  readonly sessions: ReadonlyMap<string, EmulatedSession>;
  /** Makes the next `times` calls of a step misbehave (Infinity: until cleared). */
  inject(step: EmulatedStep, fault: Fault, times?: number): void;
  clearFaults(): void;
  /**
   * Makes a share of all API calls misbehave at random, each with one of the given faults, from a
   * seeded generator so a run can be repeated. Cleared by clearFaults().
   */
  randomFaults(options: { rate: number; faults: readonly Fault[]; seed?: number }): void;
  /** Forgets recorded requests (sessions and tokens stay valid). */
  resetRecords(): void;
  /** Makes every issued token expire now. */
  expireTokens(): void;
  /** Every token issued so far, whether or not a session used it (for leak checks); with record: false, only those still unused. */
  issuedTokens(): string[];
  callCount(step: EmulatedStep): number;
  close(): Promise<void>;
}

const TTL_MIN = 60;
const TTL_MAX = 86_400;
// The contract's example body sends 3600; what the platform does without a ttl is not documented.
const DEEPLINK_DEFAULT_TTL = 3600;
const MAX_BODY_BYTES = 1024 * 1024;

interface IssuedToken {
  expiresAt: number;
}

export async function startEmulator(options: EmulatorOptions): Promise<IdvEmulator> {
  // The contract's forms: the device call bare unless a scheme is configured, the newer deeplink
  // call "ApiKey <key>" (or the configured scheme).
  const deviceAuthorization = options.apiKeyScheme ? `${options.apiKeyScheme} ${options.apiKey}` : options.apiKey;
  const deeplinkAuthorization = `${options.apiKeyScheme ?? 'ApiKey'} ${options.apiKey}`;
  const workflows = new Set(options.workflowIds);
  const tokens = new Map<string, IssuedToken>();
  const sessions = new Map<string, EmulatedSession>();
  const requests: RecordedRequest[] = [];
  const faults = new Map<EmulatedStep, { fault: Fault; remaining: number }[]>();
  const counts = new Map<EmulatedStep, number>();
  const sockets = new Set<Socket>();
  const pendingTimers = new Set<NodeJS.Timeout>();
  const record = options.record ?? true;

  let chaos: { rate: number; faults: readonly Fault[]; next: () => number } | null = null;

  function takeFault(step: EmulatedStep): Fault | undefined {
    const queue = faults.get(step);
    const head = queue?.[0];
    if (!queue || !head) {
      if (!chaos || step === 'health' || chaos.next() >= chaos.rate) return undefined;
      return chaos.faults[Math.floor(chaos.next() * chaos.faults.length)];
    }
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
      if (record) {
        requests.push({
          step: step ?? 'unknown',
          method: req.method ?? '',
          path: url.pathname,
          query: Object.fromEntries(url.searchParams),
          headers: req.headers,
          body,
          receivedAt: Date.now(),
        });
      }
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
      case 'hold': {
        const { then } = fault;
        const release = then ? () => applyFault(then, res, answer) : answer;
        fault.until.then(release, release);
        return;
      }
      case 'reset':
        res.socket?.destroy();
        return;
      case 'truncated':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 200 });
        res.write('{"authorization": "Tok');
        later(5, () => res.socket?.destroy());
        return;
      case 'oversized': {
        // Streamed in chunks, so a 10 MB answer costs the emulator no 10 MB buffer.
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': fault.bytes });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        let left = fault.bytes;
        const pump = () => {
          while (left > 0) {
            const size = Math.min(chunk.length, left);
            left -= size;
            if (!res.write(size === chunk.length ? chunk : chunk.subarray(0, size))) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('error', () => undefined);
        pump();
        return;
      }
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
      case 'deeplink':
        if (options.deeplink === false) return sendJson(res, 404, { message: 'Not found' });
        return createDeeplink(req, url, body, res);
      default:
        return hostedPage(req, url, res);
    }
  }

  function hostedPage(req: http.IncomingMessage, url: URL, res: http.ServerResponse): void {
    if (req.method === 'GET' && url.pathname === '/capture') {
      // One chain: a throw while sending (a header node refuses) must not become an unhandled rejection.
      capturePage(req, url)
        .then((answer) => sendPage(res, answer))
        .catch(() => (res.headersSent ? res.destroy() : sendJson(res, 500, { message: 'Internal error' })));
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
    if (req.headers.authorization !== deviceAuthorization) return sendJson(res, 401, { message: 'Unauthorized' });
    if (!isJsonRequest(req)) return sendJson(res, 415, { message: 'Expected application/json' });
    const parsed = parseObject(body);
    const ttl = parsed?.ttl;
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < TTL_MIN || ttl > TTL_MAX) {
      return sendJson(res, 400, { message: `ttl must be an integer from ${TTL_MIN} to ${TTL_MAX}` });
    }
    sendJson(res, 200, { authorization: issueToken(ttl, 'device') });
  }

  function issueToken(ttlSeconds: number, via: 'device' | 'deeplink'): string {
    // Shaped like real tokens ("Token tr-…"): a space inside, so the URL encoding is exercised.
    const token = `Token tr-${randomBytes(18).toString('base64url').toLowerCase()}`;
    // Without records, only a device token is kept, until its session is started.
    if (record || via === 'device') tokens.set(token, { expiresAt: Date.now() + ttlSeconds * 1000 });
    return token;
  }

  function createSession(req: http.IncomingMessage, url: URL, body: string, res: http.ServerResponse): void {
    const token = req.headers.authorization ?? '';
    const issued = tokens.get(token);
    if (!issued || issued.expiresAt <= Date.now()) return sendJson(res, 401, { message: 'Invalid or expired token' });
    if (!isJsonRequest(req)) return sendJson(res, 415, { message: 'Expected application/json' });
    const workflowId = url.searchParams.get('workflowId');
    if (!workflowId || !workflows.has(workflowId)) return sendJson(res, 404, { message: 'Workflow not found' });
    const parsed = parseObject(body);
    if (parsed === undefined || !hasValidSessionFields(parsed)) return sendJson(res, 400, { message: 'Invalid body' });
    const session = openSession(workflowId, parsed, token, 'session');
    if (!record) tokens.delete(token);
    sendJson(res, 200, { id: session.id, workflowId, status: 0, metadata: session.metadata, createdAt: session.createdAt });
  }

  /** The one-call variant: a token and a session at once, answered with the mobile URL. */
  function createDeeplink(req: http.IncomingMessage, url: URL, body: string, res: http.ServerResponse): void {
    if (req.headers.authorization !== deeplinkAuthorization) return sendJson(res, 401, { message: 'Unauthorized' });
    if (!isJsonRequest(req)) return sendJson(res, 415, { message: 'Expected application/json' });
    const workflowId = url.searchParams.get('workflowId');
    if (!workflowId || !workflows.has(workflowId)) return sendJson(res, 404, { message: 'Workflow not found' });
    const parsed = parseObject(body);
    const ttl = parsed?.ttl ?? DEEPLINK_DEFAULT_TTL;
    if (parsed === undefined || !hasValidSessionFields(parsed)) return sendJson(res, 400, { message: 'Invalid body' });
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < TTL_MIN || ttl > TTL_MAX) {
      return sendJson(res, 400, { message: `ttl must be an integer from ${TTL_MIN} to ${TTL_MAX}` });
    }
    const token = issueToken(ttl, 'deeplink');
    const session = openSession(workflowId, parsed, token, 'deeplink');
    const expiresAt = new Date(Date.parse(session.createdAt) + ttl * 1000).toISOString();
    const mobile = new URL('/mobile', emulatorUrl);
    mobile.searchParams.set('authorization', token);
    mobile.searchParams.set('sessionId', session.id);
    // URLSearchParams writes a space as "+"; real links carry %20.
    const link = mobile.href.replaceAll('+', '%20');
    sendJson(res, 200, { url: link, createdAt: session.createdAt, expiresAt, workflowIds: [workflowId] });
  }

  function openSession(workflowId: string, body: Record<string, unknown>, token: string, via: EmulatedSession['via']): EmulatedSession {
    const id = randomBytes(12).toString('hex');
    const session: EmulatedSession = {
      id,
      workflowId,
      metadata: (body.metadata ?? {}) as Record<string, unknown>,
      ...('locale' in body ? { locale: body.locale as string | null } : {}),
      token,
      createdAt: new Date().toISOString(),
      via,
    };
    if (record) sessions.set(id, session);
    return session;
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const emulatorUrl = `http://${host}:${address.port}`;

  return {
    url: emulatorUrl,
    requests,
    sessions,
    inject(step, fault, times = 1) {
      const queue = faults.get(step) ?? [];
      queue.push({ fault, remaining: times });
      faults.set(step, queue);
    },
    clearFaults() {
      faults.clear();
      chaos = null;
    },
    randomFaults({ rate, faults: choices, seed = 1 }) {
      chaos = { rate, faults: choices, next: mulberry32(seed) };
    },
    resetRecords() {
      requests.length = 0;
      counts.clear();
    },
    issuedTokens: () => [...tokens.keys()],
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

/** A small seeded PRNG (mulberry32): the same seed gives the same run of faults. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function stepOf(method: string, path: string): EmulatedStep | undefined {
  if (method === 'GET' && path === '/api/health') return 'health';
  if (method === 'POST' && path === '/api/device/ephemeral') return 'device';
  if (method === 'POST' && path === '/api/sessions') return 'session';
  if (method === 'POST' && path === '/api/v1/deeplink') return 'deeplink';
  return undefined;
}

/** `metadata` is an arbitrary object, `locale` a string or null; both optional. */
function hasValidSessionFields(body: Record<string, unknown>): boolean {
  const { metadata, locale } = body;
  if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))) return false;
  return locale === undefined || locale === null || typeof locale === 'string';
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
