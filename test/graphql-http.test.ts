import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { deflateSync, gzipSync } from 'node:zlib';
import { securityHeaders } from '../src/security-headers.js';
import { eventually } from './support/duplicates.js';
import { parsePrometheusText } from './support/prometheus.js';
import { rawBytes, rawRequest } from './support/raw-http.js';
import { START_VERIFICATION, startStack, type TestStack } from './support/stack.js';

/**
 * /graphql is served without Express (src/graphql-http.ts). What the Express chain did there and
 * the rest of the suite does not pin already: the same security headers, body decoding, the
 * paths its mount matched, and admission around preflights and clients that leave.
 */

// Headers of the connection or of the answer's own body and route, not of a security policy.
const NOT_SECURITY = new Set(['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding', 'content-type']);
const GRAPHQL_OWN = new Set(['x-request-id', 'vary', 'access-control-expose-headers', 'access-control-allow-origin', 'cache-control', 'content-type', 'content-length', 'date', 'connection', 'keep-alive']);

/** The headers helmet itself sets when it runs on a real response, with the gateway's options. */
async function helmetHeaders(production: boolean): Promise<Record<string, string>> {
  const helmet = securityHeaders(production);
  const server = http.createServer((req, res) => helmet(req, res, () => res.end()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const { headers } = await rawRequest(`http://127.0.0.1:${port}/`, { method: 'GET' });
    return Object.fromEntries(Object.entries(headers).filter(([name]) => !NOT_SECURITY.has(name))) as Record<string, string>;
  } finally {
    server.close();
  }
}

describe.each([
  ['production', true],
  ['development', false],
])('security headers on /graphql (%s)', (mode, production) => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ NODE_ENV: mode });
  });
  afterAll(() => stack.close());

  it('are exactly those helmet sets, on answers, errors and preflights alike', async () => {
    const expected = await helmetHeaders(production);
    expect(Object.keys(expected)).toContain('x-content-type-options');
    // Exactly: helmet's defaults for HTML pages (script-src, style-src, …) merged in would be allowed by a match.
    if (production) expect(expected['content-security-policy']).toBe("default-src 'none';frame-ancestors 'none'");
    else expect(expected['content-security-policy']).toBeUndefined();

    const answers = [
      await rawRequest(stack.url, { headers: { 'content-type': 'application/json', authorization: `Bearer ${await stack.token()}` }, body: JSON.stringify({ query: START_VERIFICATION }) }),
      await rawRequest(stack.url, { headers: { 'content-type': 'application/json' }, body: '{"query": ' }),
      await rawRequest(stack.url, { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' } }),
    ];
    expect(answers.map((answer) => answer.status)).toEqual([200, 400, 204]);
    for (const { headers } of answers) {
      const security = Object.fromEntries(Object.entries(headers).filter(([name]) => !GRAPHQL_OWN.has(name) && !name.startsWith('access-control-')));
      expect(security).toEqual(expected);
      expect(headers['x-powered-by']).toBeUndefined();
      expect(headers.etag).toBeUndefined();
    }
  });

  it('match what the Express routes send', async () => {
    const graphql = await rawRequest(`${stack.url}?query=${encodeURIComponent('{ __typename }')}`, { method: 'GET', headers: { 'apollo-require-preflight': 'true' } });
    const health = await rawRequest(new URL('/healthz', stack.url).href, { method: 'GET' });
    for (const name of Object.keys(await helmetHeaders(production))) expect([name, graphql.headers[name]]).toEqual([name, health.headers[name]]);
  });
});

describe('/graphql without Express', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ NODE_ENV: 'production' });
  });
  afterAll(() => stack.close());

  const post = async (body: string | Buffer, headers: Record<string, string>) =>
    rawRequest(stack.url, { headers: { 'content-type': 'application/json', authorization: `Bearer ${await stack.token('user-body')}`, ...headers }, body });

  it.each([
    ['gzip', gzipSync],
    ['deflate', deflateSync],
  ])('reads a %s-encoded body', async (encoding, compress) => {
    const response = await post(compress(JSON.stringify({ query: START_VERIFICATION })), { 'content-encoding': encoding });
    expect(response.status).toBe(200);
    expect(response.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
  });

  it.each([
    ['a body that is not the gzip it claims', { 'content-encoding': 'gzip' }, 400, /not valid JSON/],
    ['an unknown content encoding', { 'content-encoding': 'compress-9000' }, 415, /Content-Encoding is not supported/],
    ['a charset JSON does not allow', { 'content-type': 'application/json; charset=latin1' }, 415, /must be JSON in UTF-8/],
  ])('answers %s in the JSON error shape, saying what is wrong', async (_name, headers, status, message) => {
    const response = await post(JSON.stringify({ query: START_VERIFICATION }), headers);
    expect(response.status).toBe(status);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(response.headers['cache-control']).toBe('no-store');
    expect(response.body).toEqual({ errors: [{ message: expect.stringMatching(message), extensions: { code: 'BAD_REQUEST', retryable: false } }] });
  });

  // GraphQL over HTTP: the media type the client accepts, as Apollo's own answers have it.
  it.each([
    ['application/graphql-response+json, application/json;q=0.9', 'application/graphql-response+json; charset=utf-8'],
    ['multipart/mixed;deferSpec=20220824, application/graphql-response+json, application/json', 'application/graphql-response+json; charset=utf-8'],
    ['application/json, application/graphql-response+json', 'application/json; charset=utf-8'],
    ['*/*', 'application/json; charset=utf-8'],
    ['application/graphql-response+json;q=0, application/json', 'application/json; charset=utf-8'],
    ['application/json;q=0.5, application/graphql-response+json', 'application/graphql-response+json; charset=utf-8'],
    // A charset parameter must match Apollo's types, parameters included, not be refused with 406.
    ['application/json; charset=utf-8', 'application/json; charset=utf-8'],
    ['application/graphql-response+json;charset=UTF-8', 'application/graphql-response+json; charset=utf-8'],
  ])('answers a malformed body to "Accept: %s" as %s', async (accept, type) => {
    const response = await post('{"query": "mutation {', { accept });
    expect([response.status, response.headers['content-type']]).toEqual([400, type]);
    const apollo = await post(JSON.stringify({ query: '{ nope }' }), { accept });
    expect([apollo.status, apollo.headers['content-type']]).toEqual([400, type]);
  });

  it('serves every path Express mounted it on, whatever the letter case, and leaves the rest to Express', async () => {
    const query = `?query=${encodeURIComponent('{ __typename }')}`;
    const get = (path: string) => rawRequest(new URL(path, stack.url).href, { method: 'GET', headers: { 'apollo-require-preflight': 'true' } });
    for (const path of ['/graphql', '/GraphQL', '/graphql/', '/graphql/anything']) {
      const response = await get(`${path}${query}`);
      expect([path, response.status, response.body]).toEqual([path, 200, { data: { __typename: 'Query' } }]);
    }
    // Anywhere else: a JSON 404 in GraphQL's error shape, never Express's HTML page.
    for (const path of ['/graphqlx', '//graphql', '/graphql.', '/graphql;x', '/graphql%2f', '/']) {
      const elsewhere = await rawRequest(`${new URL(stack.url).origin}${path}${query}`, { method: 'GET', headers: { 'apollo-require-preflight': 'true' } });
      expect([path, elsewhere.status, elsewhere.headers['content-type']]).toEqual([path, 404, 'application/json; charset=utf-8']);
      expect(elsewhere.body).toEqual({ errors: [{ message: expect.stringMatching(/GraphQL endpoint is \/graphql/), extensions: { code: 'NOT_FOUND', retryable: false } }] });
      expect(elsewhere.headers['x-request-id']).toBeDefined();
    }
    // The absolute form, as a client talks to a proxy.
    const { host } = new URL(stack.url);
    const absolute = Buffer.from(`GET http://${host}/graphql${query} HTTP/1.1\r\nHost: ${host}\r\nApollo-Require-Preflight: true\r\nConnection: close\r\n\r\n`);
    expect(await rawBytes(stack.url, absolute)).toBe('HTTP/1.1 200 OK');
  });

  it('sends a whole answer to a conditional GET (no 304 for a no-store answer)', async () => {
    const response = await rawRequest(`${stack.url}?query=${encodeURIComponent('{ __typename }')}`, {
      method: 'GET',
      headers: { 'apollo-require-preflight': 'true', 'if-none-match': '*', 'if-modified-since': new Date().toUTCString() },
    });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ data: { __typename: 'Query' } });
  });
});

describe('admission around the GraphQL handler', () => {
  let stack: TestStack;
  beforeAll(async () => {
    // One GraphQL request in progress at a time.
    stack = await startStack({ NODE_ENV: 'production', IDV_MAX_CONCURRENCY: '1', IDV_MAX_QUEUE: '0', CORS_ORIGINS: 'https://app.example.com' });
  });
  afterAll(() => stack.close());
  beforeEach(() => stack.emulator.resetRecords());

  it('answers preflights while full, and refuses other requests with 503', async () => {
    stack.emulator.inject('device', { kind: 'delay', ms: 400 }, 1);
    const first = stack.startVerification();
    await eventually(() => stack.emulator.callCount('device') === 1, 'the first request to be admitted');

    const preflight = await rawRequest(stack.url, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://app.example.com');
    const refused = await rawRequest(stack.url, { headers: { 'content-type': 'application/json', 'x-request-id': 'shed-1' }, body: JSON.stringify({ query: START_VERIFICATION }) });
    expect(refused.status).toBe(503);
    expect(refused.headers['x-request-id']).toBe('shed-1');
    expect(refused.headers['x-content-type-options']).toBe('nosniff');

    expect((await first).body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    expect((await stack.startVerification()).status).toBe(200);
  });

  it('gives the place of a client who leaves mid-body back', async () => {
    const request = http.request(stack.url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '1000' } });
    request.on('error', () => undefined);
    request.write('{"query": "mutation {');
    await eventually(async () => (await stack.startVerification()).status === 503, 'the half-sent request to hold the only place');
    request.destroy();
    await eventually(async () => (await stack.startVerification()).status === 200, 'the place to be given back');
  });

  it('gives the place of a client who leaves while its operation runs back, and counts that request as aborted', async () => {
    const metrics = async () => parsePrometheusText(await (await fetch(stack.gateway.metricsUrl)).text());
    const aborted = { route: 'graphql', status: 'aborted' };
    const abortedBefore = (await metrics()).value('idv_gateway_http_requests_total', aborted);
    stack.emulator.inject('device', { kind: 'delay', ms: 400 }, 1);
    const body = JSON.stringify({ query: START_VERIFICATION });
    const request = http.request(stack.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), authorization: `Bearer ${await stack.token('leaver')}` },
    });
    request.on('error', () => undefined);
    request.end(body);
    await eventually(() => stack.emulator.callCount('device') === 1, 'the device call');
    request.destroy();

    await eventually(async () => (await stack.startVerification()).status === 200, 'the place to be given back');
    expect((await metrics()).value('idv_gateway_http_requests_total', aborted)).toBe(abortedBefore + 1);
  });
});
