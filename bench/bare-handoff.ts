/**
 * The upstream calls of one mutation as the baselines make them, and the handoff they build, with
 * nothing else: no auth, no duplicate protection, no resilience, no logging. Configured by the
 * environment (setup.ts):
 *
 *   BENCH_CLIENT=got     `got` 14 as the gateway calls it: the got instance of src/idv/client.ts
 *                        (createUpstreamGot), keep-alive agent, no retry, text body, JSON.parse.
 *   BENCH_CLIENT=undici  `undici.request` on its keep-alive pool, the cheapest client there is.
 *   BENCH_FLOW=ephemeral (device, then session) or deeplink (one call).
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { Agent, request } from 'undici';
import { parseConfig } from '../src/config.js';
import { buildHandoffUrls, handoffUrlsFor } from '../src/handoff.js';
import { createUpstreamGot } from '../src/idv/client.js';

type Post = (path: string, authorization: string, requestId: string, body: unknown, query?: string) => Promise<unknown>;

const baseUrl = required('IDV_BASE_URL');
const apiKey = required('IDV_API_KEY');
const workflowId = required('BENCH_WORKFLOW_ID');
// The gateway's token lifetime and upstream timeout as the benchmark runs it: IDV_TOKEN_TTL_SECONDS
// and IDV_TIMEOUT_MS left at their defaults.
const { tokenTtlSeconds: ttl, timeoutMs } = parseConfig({}).idv;
const flow = process.env.BENCH_FLOW === 'deeplink' ? 'deeplink' : 'ephemeral';
// The contract's header for the one-call deeplink, as the gateway sends it with IDV_API_KEY_SCHEME
// unset (the device call takes the bare key).
const deeplinkAuthorization = `ApiKey ${apiKey}`;
const post = process.env.BENCH_CLIENT === 'undici' ? undiciPost() : gotPost();

function gotPost(): Post {
  // IdvApiClient's own instance.
  const client = createUpstreamGot({ baseUrl, timeoutMs, agents: { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) } });
  return async (path, authorization, requestId, json, query) => {
    const response = await client.post(path, {
      headers: { authorization, 'x-request-id': requestId },
      json,
      ...(query ? { searchParams: { workflowId: query } } : {}),
    });
    if (response.statusCode !== 200) throw new Error(`HTTP ${response.statusCode}`);
    return JSON.parse(response.body);
  };
}

function undiciPost(): Post {
  const dispatcher = new Agent({ keepAliveTimeout: 4000 });
  return async (path, authorization, requestId, json, query) => {
    const url = `${baseUrl}/${path}${query ? `?workflowId=${encodeURIComponent(query)}` : ''}`;
    const response = await request(url, {
      method: 'POST',
      dispatcher,
      headers: { authorization, 'x-request-id': requestId, accept: 'application/json', 'content-type': 'application/json', 'user-agent': 'idv-gateway' },
      body: JSON.stringify(json),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const text = await response.body.text();
    if (response.statusCode !== 200) throw new Error(`HTTP ${response.statusCode}`);
    return JSON.parse(text);
  };
}

export async function handoff(userId: string): Promise<Record<string, unknown>> {
  const requestId = randomUUID();
  const metadata = { externalUserId: userId };
  if (flow === 'deeplink') {
    const answer = (await post('api/v1/deeplink', deeplinkAuthorization, requestId, { metadata, ttl }, workflowId)) as { url: string; expiresAt: string };
    const sessionId = new URL(answer.url).searchParams.get('sessionId');
    return { sessionId, ...handoffUrlsFor(answer.url), expiresAt: answer.expiresAt, workflow: 'kyc' };
  }
  const expiresAt = new Date(Date.now() + ttl * 1000).toISOString();
  const device = (await post('api/device/ephemeral', apiKey, requestId, { ttl })) as { authorization: string };
  const session = (await post('api/sessions', device.authorization, requestId, { metadata }, workflowId)) as { id: string };
  return { sessionId: session.id, ...buildHandoffUrls(baseUrl, device.authorization, session.id), expiresAt, workflow: 'kyc' };
}

/** Reads a request's body whole, as the gateway must before it can answer, then calls `then` with it. */
export function readBody(req: http.IncomingMessage, then: (body: string) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => then(Buffer.concat(chunks).toString('utf8')));
}

/** Prints the line setup.ts waits for, once `server` listens on loopback. */
export function listenAndAnnounce(server: http.Server): void {
  server.keepAliveTimeout = 5000;
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as { port: number };
    process.stdout.write(`${JSON.stringify({ ready: `http://127.0.0.1:${port}/graphql` })}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}

export function send(res: http.ServerResponse, status: number, payload: string, contentType = 'application/json'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}
