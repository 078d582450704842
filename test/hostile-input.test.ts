import { eventually, gate } from './support/duplicates.js';
import { rawBytes, rawRequest, sendRaw, type RawResponse } from './support/raw-http.js';
import { START_VERIFICATION, startStack, type TestStack } from './support/stack.js';

/**
 * What attackers and broken clients send, against the gateway in production mode. Each request
 * must get a clear 4xx or a coded GraphQL error, make no upstream call, and leave the server
 * serving the next valid request.
 */
describe('hostile and broken requests (production mode)', () => {
  let stack: TestStack;
  let bearer: string;
  beforeAll(async () => {
    stack = await startStack({ NODE_ENV: 'production' });
    bearer = `Bearer ${await stack.token('user-h')}`;
  });
  afterAll(() => stack.close());
  beforeEach(() => stack.emulator.resetRecords());

  const json = (body: unknown, headers: Record<string, string> = {}) =>
    rawRequest(stack.url, {
      headers: { 'content-type': 'application/json', authorization: bearer, ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const mutation = (n: number, alias = (i: number) => `a${i}`) =>
    `mutation { ${Array.from({ length: n }, (_, i) => `${alias(i)}: startVerification { sessionId }`).join(' ')} }`;
  const nested = (depth: number) => `{ ${'a { '.repeat(depth)}b${' }'.repeat(depth)} }`;

  type Case = [name: string, send: () => Promise<RawResponse>, status: number, code: string | null, message?: RegExp];
  const cases: Case[] = [
    ['malformed JSON', () => json('{"query": "mutation {'), 400, 'BAD_REQUEST', /not valid JSON/],
    ['a JSON body that is not an object', () => json('"mutation { startVerification { sessionId } }"'), 400, 'BAD_REQUEST'],
    ['text/plain (a CSRF-style simple request)', () => rawRequest(stack.url, { headers: { 'content-type': 'text/plain', authorization: bearer }, body: JSON.stringify({ query: START_VERIFICATION }) }), 400, 'BAD_REQUEST', /Cross-Site Request Forgery/],
    ['no content type', () => rawRequest(stack.url, { headers: { authorization: bearer }, body: JSON.stringify({ query: START_VERIFICATION }) }), 400, 'BAD_REQUEST'],
    ['a form post', () => rawRequest(stack.url, { headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: bearer }, body: 'query=mutation%7BstartVerification%7BsessionId%7D%7D' }), 400, 'BAD_REQUEST'],
    ['a body over the limit', () => json({ query: `${START_VERIFICATION}#${'x'.repeat(70_000)}` }), 413, 'BAD_REQUEST', /larger than 65536 bytes/],
    // Saying which limit, not its value (production), and not as a "Syntax Error".
    ['a query nested past the depth limit', () => json({ query: nested(20) }), 400, 'GRAPHQL_VALIDATION_FAILED', /^The query is nested too deeply\.$/m],
    ['an alias bomb on startVerification', () => json({ query: mutation(50) }), 400, 'GRAPHQL_VALIDATION_FAILED', /^The query uses too many aliases\.$/m],
    ['two aliased startVerification calls', () => json({ query: mutation(2) }), 400, 'GRAPHQL_VALIDATION_FAILED', /only once per request/],
    ['startVerification twice through fragments', () => json({ query: 'mutation { ...A ...B } fragment A on Mutation { a: startVerification { sessionId } } fragment B on Mutation { b: startVerification { sessionId } }' }), 400, 'GRAPHQL_VALIDATION_FAILED', /only once per request/],
    ['an alias bomb on a query', () => json({ query: `{ ${Array.from({ length: 200 }, (_, i) => `w${i}: workflows`).join(' ')} }` }), 400, 'GRAPHQL_VALIDATION_FAILED'],
    ['a batch of operations', () => json(Array.from({ length: 50 }, () => ({ query: START_VERIFICATION }))), 400, 'BAD_REQUEST', /batching/i],
    ['a batch over the body limit', () => json(Array.from({ length: 1000 }, () => ({ query: START_VERIFICATION }))), 413, 'BAD_REQUEST'],
    ['a document with many operations', () => json({ query: Array.from({ length: 300 }, (_, i) => `query Q${i} { workflows }`).join('\n'), operationName: 'Q1' }), 400, 'GRAPHQL_PARSE_FAILED', /^Syntax Error: the document is too large\.$/],
    ['an unknown operation name', () => json({ query: START_VERIFICATION, operationName: 'DeleteEverything' }), 400, 'OPERATION_RESOLUTION_FAILURE'],
    ['a mutation over GET', () => rawRequest(`${stack.url}?query=${encodeURIComponent('mutation { startVerification { sessionId } }')}`, { method: 'GET', headers: { authorization: bearer, 'apollo-require-preflight': 'true' } }), 405, 'BAD_REQUEST'],
    ['a GET without the CSRF preflight header', () => rawRequest(`${stack.url}?query=${encodeURIComponent('{ workflows }')}`, { method: 'GET', headers: { authorization: bearer } }), 400, 'BAD_REQUEST'],
    ['an Accept header that takes no JSON type', () => json({ query: '{ workflows }' }, { accept: 'application/xml' }), 406, 'BAD_REQUEST'],
    // Refused before it runs: Apollo would start the (paid) session, then answer 406 without it.
    ['a startVerification whose Accept header takes no JSON type', () => json({ query: START_VERIFICATION }, { accept: 'text/html' }), 406, 'BAD_REQUEST', /does not accept application\/json/],
    ['a PUT', () => rawRequest(stack.url, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: bearer }, body: JSON.stringify({ query: START_VERIFICATION }) }), 405, 'BAD_REQUEST'],
    ['a workflow of the wrong type', () => json({ query: START_VERIFICATION, variables: { input: { workflow: 123 } } }), 400, 'BAD_USER_INPUT'],
    ['input of the wrong type', () => json({ query: START_VERIFICATION, variables: { input: 'kyc' } }), 400, 'BAD_USER_INPUT'],
    ['an unknown input field', () => json({ query: START_VERIFICATION, variables: { input: { workflow: 'kyc', externalUserId: 'victim' } } }), 400, 'BAD_USER_INPUT'],
    ['variables that are not an object', () => json({ query: START_VERIFICATION, variables: [1, 2] }), 400, 'BAD_REQUEST'],
    ['a workflow name of 10 000 characters', () => json({ query: START_VERIFICATION, variables: { input: { workflow: 'k'.repeat(10_000) } } }), 200, 'BAD_USER_INPUT'],
    ['a workflow name with control characters', () => json({ query: START_VERIFICATION, variables: { input: { workflow: 'kyc\u0000\r\n\u001b[31m' } } }), 200, 'BAD_USER_INPUT'],
    ['introspection', () => json({ query: '{ __schema { types { name } } }' }), 400, 'GRAPHQL_VALIDATION_FAILED', /introspection/i],
    ['a misspelt field (no "did you mean")', () => json({ query: 'mutation { startVerificaton { sessionId } }' }), 400, 'GRAPHQL_VALIDATION_FAILED'],
    ['a subscription (the schema has none)', () => json({ query: 'subscription { workflows }' }), 400, 'GRAPHQL_VALIDATION_FAILED', /no subscriptions/],
    ['a persisted query whose hash does not match its text', () => json({ query: '{ workflows }', extensions: { persistedQuery: { version: 1, sha256Hash: '00' } } }), 400, 'BAD_REQUEST', /sha does not match/],
    ['a persisted query of an unknown version', () => json({ query: '{ workflows }', extensions: { persistedQuery: { version: 2, sha256Hash: '00' } } }), 400, 'BAD_REQUEST', /Unsupported persisted query version/],
    ['a persisted query that is not an object', () => json({ query: '{ workflows }', extensions: { persistedQuery: 'x' } }), 400, 'BAD_REQUEST'],
  ];

  // Rows become objects: jest passes `done` to a callback whose row is shorter than its arity.
  const rows = cases.map(([name, send, status, code, message]) => ({ name, send, status, code, message }));
  it.each(rows)('$name', async ({ send, status, code, message }) => {
    const logStart = stack.logs.length;
    const response = await send();
    expect(response.status).toBe(status);
    if (code !== null) {
      expect(response.body.errors.length).toBeGreaterThan(0);
      for (const error of response.body.errors) {
        expect(error.extensions.retryable).toBe(false);
        expect(typeof error.message).toBe('string');
      }
      expect(response.body.errors.map((error: { extensions: { code: string } }) => error.extensions.code)).toContain(code);
      if (message) expect(response.body.errors.map((error: { message: string }) => error.message).join('\n')).toMatch(message);
      expect(response.text).not.toMatch(/Did you mean/i);
      expect(response.text).not.toMatch(/at .*\.(js|ts):\d+/);
      expect(response.text).not.toContain('k'.repeat(100));
    }
    expect(stack.emulator.requests).toEqual([]);
    const next = await stack.startVerification();
    expect(next.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    // A caller's mistake is not an unexpected failure: no error line, no INTERNAL_SERVER_ERROR
    // (the operation line of the request before is written by the time the next one is answered).
    const logged = stack.logs.slice(logStart).join('');
    expect(logged).not.toContain('masked for the client');
    expect(logged).not.toContain('"outcome":"INTERNAL_SERVER_ERROR"');
  });

  it('refuses a 100 KB bearer token at the HTTP layer and keeps serving', async () => {
    // Node answers headers past its 16 KiB limit with 431 and closes the socket while the client
    // may still be sending; the client then sees either the 431 or the reset, never anything else.
    const outcome = await json({ query: START_VERIFICATION }, { authorization: `Bearer ${'a'.repeat(100_000)}` }).then(
      (response) => response.status,
      (error: NodeJS.ErrnoException) => error.code,
    );
    expect([431, 'ECONNRESET', 'EPIPE']).toContain(outcome);
    expect(stack.emulator.requests).toEqual([]);
    expect((await stack.startVerification()).status).toBe(200);
  });

  it.each([
    ['Latin-1 bytes in the Authorization header', Buffer.concat([Buffer.from('Authorization: Bearer '), Buffer.from([0xe9, 0xff, 0xfe]), Buffer.from('\r\n')]), 'HTTP/1.1 401'],
    ['a NUL byte in a header', Buffer.from('Authorization: Bearer a\u0000b\r\n'), 'HTTP/1.1 400'],
    ['a header without a colon', Buffer.from('Authorization Bearer x\r\n'), 'HTTP/1.1 400'],
    ['UTF-8 in x-request-id', Buffer.concat([Buffer.from('X-Request-Id: '), Buffer.from('ïd-☃', 'utf8'), Buffer.from('\r\n')]), 'HTTP/1.1 401'],
  ])('%s gets a 4xx', async (_name, header, statusLine) => {
    const body = JSON.stringify({ query: START_VERIFICATION });
    const { host } = new URL(stack.url);
    const request = Buffer.concat([
      Buffer.from(`POST /graphql HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n`),
      header,
      Buffer.from(`\r\n${body}`),
    ]);
    expect(await rawBytes(stack.url, request)).toMatch(new RegExp(`^${statusLine}`));
    expect(stack.emulator.requests).toEqual([]);
    expect((await stack.startVerification()).status).toBe(200);
  });

  it('refuses an HTTP/1.1 request without Host in the JSON error shape', async () => {
    const answer = await sendRaw(stack.url, 'POST /graphql HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    // The headers the parser's own refusals carry (answerClientError), though no route runs for it.
    const head = answer.slice(0, answer.indexOf('\r\n\r\n')).toLowerCase();
    expect(head).toContain('\r\nx-content-type-options: nosniff\r\n');
    expect(head).toContain('\r\ncache-control: no-store\r\n');
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({
      errors: [{ message: 'An HTTP/1.1 request needs a Host header.', extensions: { code: 'BAD_REQUEST', retryable: false } }],
    });
    // HTTP/1.0 has no Host requirement.
    expect(await sendRaw(stack.url, 'GET /healthz HTTP/1.0\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('answers what node cannot parse with the JSON error shape, not a bare status line', async () => {
    const answer = await sendRaw(stack.url, 'POST /graphql HTTP/1.1\r\nAuthorization Bearer x\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({
      errors: [{ message: 'The request is not valid HTTP.', extensions: { code: 'BAD_REQUEST', retryable: false } }],
    });
    expect(stack.emulator.requests).toEqual([]);
    expect((await stack.startVerification()).status).toBe(200);
  });

  it('sends security headers and no-store, and serves no landing page', async () => {
    const response = await rawRequest(stack.url, { method: 'GET', headers: { accept: 'text/html' } });
    expect(response.headers['content-type']).not.toMatch(/html/);
    expect(response.text).not.toMatch(/sandbox/i);
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.headers['content-security-policy']).toBe("default-src 'none';frame-ancestors 'none'");
    expect(response.headers['cache-control']).toBe('no-store');
    expect(response.headers['x-powered-by']).toBeUndefined();
  });

  it('answers no cross-origin request by default in production', async () => {
    const preflight = await rawRequest(stack.url, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('a client that sends its request slowly', () => {
  // A request holds its admission slot from its headers on: one that never finishes its body
  // would hold it for node's default 300 s, and 640 of them would shut the door for everyone.
  it('gets a JSON 408 after HTTP_REQUEST_TIMEOUT_MS, and the slot it held is free again', async () => {
    const stack = await startStack({ NODE_ENV: 'production', HTTP_REQUEST_TIMEOUT_MS: '1000', IDV_MAX_CONCURRENCY: '1', IDV_MAX_QUEUE: '0' });
    try {
      const { host } = new URL(stack.url);
      const started = performance.now();
      const slow = sendRaw(stack.url, `POST /graphql HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`);
      await eventually(async () => (await stack.startVerification()).status === 503, 'the slow request to hold the only slot');
      const answer = await slow;
      expect(performance.now() - started).toBeLessThan(5000);
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(answer).toMatch(/\r\ncontent-type: application\/json/i);
      expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({
        errors: [{ message: expect.stringMatching(/not received in time/), extensions: { code: 'BAD_REQUEST', retryable: true } }],
      });
      expect((await stack.startVerification()).status).toBe(200);
    } finally {
      await stack.close();
    }
  });

  it('never answers 408 in place of an earlier pipelined request that is still being worked on', async () => {
    // The upstream call outlasts the second request's timeout: the first is still being worked on.
    const stack = await startStack({ NODE_ENV: 'production', HTTP_REQUEST_TIMEOUT_MS: '1000', IDV_TIMEOUT_MS: '20000', IDV_DEADLINE_MS: '20000' });
    try {
      const held = gate();
      stack.emulator.inject('device', { kind: 'hold', until: held.until });
      const { host } = new URL(stack.url);
      const body = JSON.stringify({ query: START_VERIFICATION });
      const first = `POST /graphql HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nAuthorization: Bearer ${await stack.token('pipeliner')}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      // The first request whole, then the start of a second that never ends.
      const answer = sendRaw(stack.url, `${first}POST /graphql HTTP/1.1\r\nHost: ${host}\r\n`);
      const received = await answer;
      held.open();
      // The connection is cut: a client that took a 408 for the first request's answer would retry
      // a mutation that is running.
      expect(received).not.toMatch(/^HTTP\/1\.1 408/);
    } finally {
      await stack.close();
    }
  });

  it('gets the same for headers that never end', async () => {
    const stack = await startStack({ NODE_ENV: 'production', HTTP_REQUEST_TIMEOUT_MS: '1000' });
    try {
      const answer = await sendRaw(stack.url, 'POST /graphql HTTP/1.1\r\nContent-Type: application/json\r\n');
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      await stack.close();
    }
  });
});

describe('CORS with an allow-list', () => {
  it('allows the listed origins only, without credentials', async () => {
    const stack = await startStack({ NODE_ENV: 'production', CORS_ORIGINS: 'https://app.example.com' });
    try {
      const preflight = (origin: string) =>
        rawRequest(stack.url, {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
        });
      const allowed = await preflight('https://app.example.com');
      expect(allowed.status).toBe(204);
      expect(allowed.headers['access-control-allow-origin']).toBe('https://app.example.com');
      expect(allowed.headers['access-control-allow-headers']).toContain('authorization');
      expect(allowed.headers['access-control-allow-credentials']).toBeUndefined();
      expect((await preflight('https://evil.example.com')).headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await stack.close();
    }
  });
});

describe('development mode', () => {
  it('serves Apollo Sandbox and introspection, and explains limits', async () => {
    const stack = await startStack({ GRAPHQL_MAX_DEPTH: '3' });
    try {
      // From another origin too, but never readable there: the page embeds the dev bearer token.
      const page = await rawRequest(stack.url, { method: 'GET', headers: { accept: 'text/html', origin: 'https://evil.example' } });
      expect(page.status).toBe(200);
      expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(page.text).toMatch(/sandbox/i);
      expect(page.headers['access-control-allow-origin']).toBeUndefined();
      // Nor by a name other than a loopback one: a DNS-rebinding page sends its own.
      for (const host of ['rebind.evil.example:4000', '192.0.2.10:4000']) {
        const rebound = await rawRequest(stack.url, { method: 'GET', headers: { accept: 'text/html', host } });
        expect([host, rebound.status, rebound.text]).toEqual([host, 403, expect.stringMatching(/only to a browser on this machine/)]);
      }
      for (const host of ['localhost:4000', 'app.localhost', '127.0.0.1', '[::1]:4000']) {
        expect([host, (await rawRequest(stack.url, { method: 'GET', headers: { accept: 'text/html', host } })).status]).toEqual([host, 200]);
      }
      // The API itself stays open to any origin in development.
      const api = await rawRequest(stack.url, { headers: { 'content-type': 'application/json', origin: 'https://evil.example' }, body: '{"query":"{ __typename }"}' });
      expect(api.headers['access-control-allow-origin']).toBe('*');
      const introspection = await stack.post({ query: '{ __schema { queryType { name } } }' });
      expect(introspection.body.data.__schema.queryType.name).toBe('Query');
      const deep = await stack.post({ query: `{ ${'a { '.repeat(5)}b${' }'.repeat(5)} }` });
      expect(deep.body.errors[0].message).toMatch(/^Query depth limit of 3 exceeded/);
    } finally {
      await stack.close();
    }
  });
});
