import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { startEmulator } from '../src/emulator/index.js';
import { healthRoutes, Readiness } from '../src/health.js';
import { IdvHealthProbe } from '../src/idv/health-probe.js';
import { eventually } from './support/duplicates.js';
import { capturingLogger } from './support/log-capture.js';
import { parsePrometheusText } from './support/prometheus.js';
import { rawConnection } from './support/raw-http.js';
import { startStack, TEST_API_KEY, WORKFLOW_IDS, type TestStack } from './support/stack.js';

interface Health {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

async function get(url: string): Promise<Health> {
  const response = await fetch(url);
  return { status: response.status, body: await response.json() };
}

/** Asks until `done` holds (each answer is a fresh probe's, or the one before it), at most 100 times. */
async function pollUntil(url: string, done: (health: Health) => boolean): Promise<Health> {
  let last: Health | undefined;
  for (let attempt = 0; attempt < 100; attempt += 1) {
    last = await get(url);
    if (done(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`never reached the expected state; last answer: ${JSON.stringify(last)}`);
}

describe('Readiness over HTTP, through its lifecycle', () => {
  it('is 503 while starting, 200 when ready, 503 for good once draining; liveness stays 200', async () => {
    const readiness = new Readiness();
    readiness.setDependency('idv', () => ({ state: 'up' }));
    readiness.setDependency('broken', () => {
      throw new Error('a reporter that fails');
    });
    const server = http.createServer(express().use(healthRoutes(readiness)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const dependencies = { idv: { state: 'up' }, broken: { state: 'unknown' } };
      expect(await get(`${base}/readyz`)).toEqual({ status: 503, body: { status: 'starting', dependencies } });
      expect(await get(`${base}/healthz`)).toEqual({ status: 200, body: { status: 'ok' } });
      readiness.markReady();
      expect(await get(`${base}/readyz`)).toEqual({ status: 200, body: { status: 'ready', dependencies } });
      readiness.markDraining();
      readiness.markReady();
      expect(await get(`${base}/readyz`)).toEqual({ status: 503, body: { status: 'draining', dependencies } });
      expect(await get(`${base}/healthz`)).toEqual({ status: 200, body: { status: 'ok' } });
    } finally {
      server.close();
      server.closeAllConnections();
    }
  });
});

describe('/readyz and /healthz on a running gateway', () => {
  let stack: TestStack;
  let readyz: string;
  beforeEach(async () => {
    // A probe on every /readyz, so a change upstream shows at the next answer but one.
    stack = await startStack({ IDV_HEALTH_CACHE_MS: '0', IDV_HEALTH_TIMEOUT_MS: '300' });
    readyz = new URL('/readyz', stack.url).href;
  });
  afterEach(() => stack.close());

  it('is ready and names each dependency: the IDV platform (probed) and its flow, the breaker, the bulkhead, Redis (a placeholder)', async () => {
    const { status, body } = await get(readyz);
    expect(status).toBe(200);
    expect(body).toEqual({
      status: 'ready',
      dependencies: {
        idv: { state: 'up', httpStatus: 200, latencyMs: expect.any(Number), checkedAt: expect.any(String), flow: { configured: 'ephemeral', active: 'ephemeral' } },
        circuitBreaker: { state: 'closed' },
        bulkhead: { state: 'ok', active: 0, queued: 0, maxConcurrency: 128, maxQueue: 512 },
        redis: { state: 'not-configured' },
      },
    });
    expect(stack.emulator.callCount('health')).toBe(1);
    // The probe sends no credential: the health path needs none.
    const probe = stack.emulator.requests.find((request) => request.step === 'health');
    expect(probe?.headers.authorization).toBeUndefined();
    expect(await get(new URL('/healthz', stack.url).href)).toEqual({ status: 200, body: { status: 'ok' } });
    const metrics = parsePrometheusText(await (await fetch(stack.gateway.metricsUrl)).text());
    expect(metrics.value('idv_gateway_idv_platform_up')).toBe(1);
  });

  it('stays ready while the IDV platform answers 503, reports it, logs it once, and sees it recover', async () => {
    await get(readyz);
    stack.emulator.inject('health', { kind: 'status', status: 503 }, Number.POSITIVE_INFINITY);
    const down = await pollUntil(readyz, (health) => health.body.dependencies.idv.state === 'down');
    expect(down.status).toBe(200);
    expect(down.body.status).toBe('ready');
    expect(down.body.dependencies.idv).toMatchObject({ state: 'down', httpStatus: 503, reason: 'HTTP 503' });
    await get(readyz);
    await get(readyz);
    expect(parsePrometheusText(await (await fetch(stack.gateway.metricsUrl)).text()).value('idv_gateway_idv_platform_up')).toBe(0);
    expect(stack.logs.filter((line) => line.includes('IDV platform health probe: down'))).toHaveLength(1);

    stack.emulator.clearFaults();
    const up = await pollUntil(readyz, (health) => health.body.dependencies.idv.state === 'up');
    expect(up.status).toBe(200);
  });

  it('stays ready when the IDV platform is gone altogether (connection refused)', async () => {
    await get(readyz);
    await stack.emulator.close();
    const down = await pollUntil(readyz, (health) => health.body.dependencies.idv.state === 'down');
    expect(down.status).toBe(200);
    expect(down.body.dependencies.idv).toMatchObject({ state: 'down', reason: 'ECONNREFUSED' });
  });

  it('times out a hanging probe, without holding /readyz', async () => {
    await get(readyz);
    stack.emulator.inject('health', { kind: 'hang' }, Number.POSITIVE_INFINITY);
    const down = await pollUntil(readyz, (health) => health.body.dependencies.idv.state === 'down');
    expect(down.status).toBe(200);
    expect(down.body.dependencies.idv).toMatchObject({ state: 'down', reason: 'ETIMEDOUT' });
  });
});

describe('the IDV health probe, closed while a probe is in flight', () => {
  it('drops that probe: the connection its close cuts is not reported as the platform down', async () => {
    const emulator = await startEmulator({ apiKey: TEST_API_KEY, workflowIds: Object.values(WORKFLOW_IDS) });
    const { lines, logger } = capturingLogger();
    const changes: boolean[] = [];
    const probe = new IdvHealthProbe({ baseUrl: emulator.url, timeoutMs: 10_000, maxAgeMs: 0 }, logger, (up) => changes.push(up));
    try {
      emulator.inject('health', { kind: 'hang' }, Number.POSITIVE_INFINITY);
      // Nothing known yet, so status() waits on the probe itself: its promise settles once the
      // probe's outcome has been handled, which makes "nothing was reported" a checkable fact.
      const first = probe.status();
      await eventually(() => emulator.callCount('health') === 1, 'the probe to reach the platform');
      probe.close();
      const answer = await first;
      expect(lines.filter((line) => line.includes('IDV platform health probe'))).toEqual([]);
      expect(changes).toEqual([]);
      expect(answer.state).toBe('unknown');
      // Closed: no further probe, only the last answer.
      expect((await probe.status()).state).toBe('unknown');
      expect(emulator.callCount('health')).toBe(1);
    } finally {
      probe.close();
      await emulator.close();
    }
  });
});

describe('draining', () => {
  it('answers a request whose headers were still arriving when it began, instead of dropping it', async () => {
    const stack = await startStack();
    try {
      const { host } = new URL(stack.url);
      const arriving = await rawConnection(stack.url);
      arriving.socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\n`);
      // An idle connection, by contrast, is closed (one that never carried a request, as this one,
      // after a moment for its first request: see the next test).
      const idle = await rawConnection(stack.url);
      await new Promise((resolve) => setTimeout(resolve, 100));

      const stopping = stack.gateway.stop();
      await idle.answer;
      arriving.socket.write('\r\n');
      expect(await arriving.answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect((await stopping).cutOff).toBe(0);
    } finally {
      await stack.close();
    }
  });
});

describe('a connection accepted just before the drain, its request still on the way', () => {
  it('is answered, not ended under the request', async () => {
    const stack = await startStack();
    try {
      const { host } = new URL(stack.url);
      // A load balancer's new connection: accepted, its request sent a moment later.
      const fresh = await rawConnection(stack.url);
      const stopping = stack.gateway.stop();
      await new Promise((resolve) => setTimeout(resolve, 50));
      fresh.socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      const answer = await fresh.answer;
      expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(answer).toMatch(/\r\nConnection: close\r\n/i);
      expect(await stopping).toEqual({ inFlight: 0, cutOff: 0, graceMs: 10_000 });
    } finally {
      await stack.close();
    }
  });
});

describe('keep-alive connections while draining', () => {
  /** One POST on `agent`; the answer, or the error with whether it was sent on a reused connection. */
  function postOn(agent: http.Agent, url: string, token: string): Promise<{ status: number; connection: string | undefined } | { code: string | undefined; reused: boolean }> {
    const body = JSON.stringify({ query: 'mutation { startVerification { sessionId } }' });
    return new Promise((resolve) => {
      const request = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } }, (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode ?? 0, connection: response.headers.connection }));
      });
      request.on('error', (error: NodeJS.ErrnoException) => resolve({ code: error.code, reused: request.reusedSocket }));
      request.end(body);
    });
  }

  it('answers the requests in flight with Connection: close, so a client never sends its next one on a connection being ended', async () => {
    const stack = await startStack();
    // A load balancer's pool: connections kept open and reused for the next request at once.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    try {
      // Four callers (one caller's identical requests in flight would be joined into one).
      const tokens = await Promise.all(Array.from({ length: 4 }, (_, i) => stack.token(`pool-user-${i}`)));
      // Four connections, each answered once already (so each next request reuses one).
      await Promise.all(tokens.map((token) => postOn(agent, stack.url, token)));
      stack.emulator.inject('session', { kind: 'delay', ms: 300 }, 4);
      const sessionsBefore = stack.emulator.callCount('session');
      const inFlight = tokens.map((token) =>
        // Each client sends its next request as soon as its answer came, as a busy pool does.
        postOn(agent, stack.url, token).then(async (first) => ({ first, next: await postOn(agent, stack.url, token) })),
      );
      await eventually(() => stack.emulator.callCount('session') === sessionsBefore + 4, 'the four session calls');

      const stopping = stack.gateway.stop();
      const answers = await Promise.all(inFlight);
      for (const { first, next } of answers) {
        expect(first).toEqual({ status: 200, connection: 'close' });
        // Not a reset on the reused connection (a request lost after it was sent: a 502 from a
        // load balancer, which may not retry a POST), but a refused new connection, which any
        // client may retry elsewhere.
        expect(next).toEqual({ code: 'ECONNREFUSED', reused: false });
      }
      expect((await stopping).cutOff).toBe(0);
    } finally {
      agent.destroy();
      await stack.close();
    }
  });
});

describe('SHUTDOWN_DELAY_MS', () => {
  /** A GET /healthz on `agent`: the answer, or the error with whether it was sent on a reused connection. */
  function getOn(agent: http.Agent, url: string): Promise<{ status: number; connection: string | undefined } | { code: string | undefined; reused: boolean }> {
    return new Promise((resolve) => {
      const request = http.get(url, { agent }, (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode ?? 0, connection: response.headers.connection }));
      });
      request.on('error', (error: NodeJS.ErrnoException) => resolve({ code: error.code, reused: request.reusedSocket }));
    });
  }

  it('keeps accepting and answering, with readiness 503 and Connection: close, before it closes the listener', async () => {
    // Room for the five requests below inside the delay on a slow, shared machine.
    const stack = await startStack({ METRICS_PORT: '0', SHUTDOWN_DELAY_MS: '2000' });
    // A load balancer's pool, holding connections that were idle when the signal came.
    const pool = new http.Agent({ keepAlive: true, maxSockets: 3 });
    try {
      const { gateway } = stack;
      const healthz = new URL('/healthz', stack.url).href;
      await Promise.all(Array.from({ length: 3 }, () => getOn(pool, healthz)));
      expect(Object.values(pool.freeSockets).flat()).toHaveLength(3);

      const stopping = gateway.stop();
      // A request on a pooled connection idle when the drain began is answered, not reset, and
      // told to close it; so is one on a new connection; and readiness says to route elsewhere.
      const onPooled = await Promise.all(Array.from({ length: 3 }, () => getOn(pool, healthz)));
      expect(onPooled).toEqual(Array.from({ length: 3 }, () => ({ status: 200, connection: 'close' })));
      expect(await getOn(new http.Agent(), healthz)).toEqual({ status: 200, connection: 'close' });
      expect(await get(`${gateway.adminUrl}/readyz`)).toMatchObject({ status: 503, body: { status: 'draining' } });

      expect(await stopping).toEqual({ inFlight: 0, cutOff: 0, graceMs: 10_000 });
      await expect(fetch(healthz)).rejects.toThrow();
    } finally {
      pool.destroy();
      await stack.close();
    }
  });
});

describe('a request cut off at the end of the grace period', () => {
  it('still gets its operation log line before the gateway stops', async () => {
    const stack = await startStack({ SHUTDOWN_GRACE_MS: '300', IDV_TIMEOUT_MS: '5000' });
    try {
      stack.emulator.inject('session', { kind: 'hang' });
      const cut = stack.startVerification().catch(() => null);
      await eventually(() => stack.emulator.callCount('session') === 1, 'the session call');
      expect(await stack.gateway.stop()).toMatchObject({ inFlight: 1, cutOff: 1 });
      await cut;
      const lines = stack.logs.map((line) => JSON.parse(line) as { msg?: string; field?: string; outcome?: string });
      expect(lines.filter((line) => line.msg === 'graphql operation' && line.field === 'startVerification')).toEqual([
        expect.objectContaining({ outcome: 'CANCELLED' }),
      ]);
    } finally {
      await stack.close();
    }
  });
});

describe('/readyz while draining', () => {
  it('turns 503 at once on the metrics port, while a request in flight finishes and new connections are refused', async () => {
    const stack = await startStack({ METRICS_PORT: '0' });
    try {
      const { emulator, gateway } = stack;
      expect((await get(`${gateway.adminUrl}/readyz`)).status).toBe(200);
      emulator.inject('device', { kind: 'delay', ms: 500 });
      const inFlight = stack.startVerification();
      while (emulator.callCount('device') < 1) await new Promise((resolve) => setTimeout(resolve, 10));

      const stopping = gateway.stop();
      const draining = await get(`${gateway.adminUrl}/readyz`);
      expect(draining.status).toBe(503);
      expect(draining.body.status).toBe('draining');
      expect(await get(`${gateway.adminUrl}/healthz`)).toEqual({ status: 200, body: { status: 'ok' } });
      await expect(fetch(new URL('/healthz', stack.url))).rejects.toThrow();

      const answer = await inFlight;
      expect(answer.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
      expect(await stopping).toEqual({ inFlight: 1, cutOff: 0, graceMs: 10_000 });
    } finally {
      await stack.close();
    }
  });
});
