import http from 'node:http';
import { eventually } from './support/duplicates.js';
import { parseConfig } from '../src/config.js';
import { startEmulator } from '../src/emulator/index.js';
import { IdvApiClient } from '../src/idv/client.js';
import { ResilientIdvPlatform } from '../src/idv/resilient-platform.js';
import { capturingLogger } from './support/log-capture.js';
import { START_VERIFICATION, startStack, TEST_API_KEY, type TestStack } from './support/stack.js';

describe('circuit breaker', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ IDV_BREAKER_FAILURES: '3', IDV_BREAKER_COOLDOWN_MS: '2000', IDV_DEVICE_RETRIES: '0' });
  });
  afterAll(() => stack.close());

  it('opens under a dead upstream, answers at once during the cool-down, then probes and closes', async () => {
    stack.emulator.inject('device', { kind: 'status', status: 503 }, Infinity);
    for (let i = 0; i < 3; i += 1) {
      const response = await stack.startVerification();
      expect(response.body.errors[0].extensions).toEqual({ code: 'IDV_UNAVAILABLE', retryable: true });
    }
    expect(stack.emulator.callCount('device')).toBe(3);
    expect(stack.gateway.upstream().breaker).toBe('open');
    expect(stack.logs.join('')).toContain('circuit opened after 3 consecutive failures');

    // Open: no upstream call, an immediate answer with a retry hint.
    const started = performance.now();
    const fastFailures = await Promise.all(Array.from({ length: 20 }, () => stack.startVerification()));
    const elapsedMs = performance.now() - started;
    for (const response of fastFailures) {
      expect(response.body.errors[0].extensions).toEqual({ code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: expect.any(Number) });
      expect(response.body.errors[0].extensions.retryAfterSeconds).toBeLessThanOrEqual(2);
    }
    expect(stack.emulator.callCount('device')).toBe(3);
    console.log(`breaker open: 20 concurrent mutations answered in ${elapsedMs.toFixed(1)} ms in all, with no upstream call`);

    // The platform recovers; after the cool-down one call probes it and closes the circuit.
    stack.emulator.clearFaults();
    await eventually(async () => (await stack.startVerification()).body.data?.startVerification !== undefined, 'the circuit to close');
    expect(stack.gateway.upstream().breaker).toBe('closed');
    expect(stack.emulator.callCount('device')).toBe(4);
    const after = await Promise.all(Array.from({ length: 5 }, () => stack.startVerification()));
    for (const response of after) expect(response.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    expect(stack.logs.join('')).toContain('circuit closed');
  });

  it('is not opened by refusals (4xx) or by an answer outside the contract', async () => {
    stack.emulator.inject('session', { kind: 'status', status: 404 }, 5);
    stack.emulator.inject('device', { kind: 'html' }, 5);
    for (let i = 0; i < 10; i += 1) expect((await stack.startVerification()).body.errors[0].extensions.code).toBe('IDV_FAILED');
    expect(stack.gateway.upstream().breaker).toBe('closed');
  });

  it('opens when only the session call fails (each device call succeeding), and then makes no device either', async () => {
    const { emulator } = stack;
    const devices = emulator.callCount('device');
    const sessions = emulator.callCount('session');
    emulator.inject('session', { kind: 'status', status: 503 }, Infinity);
    for (let i = 0; i < 3; i += 1) expect((await stack.startVerification()).body.errors[0].extensions.code).toBe('IDV_UNAVAILABLE');
    expect([emulator.callCount('device') - devices, emulator.callCount('session') - sessions]).toEqual([3, 3]);
    expect(stack.gateway.upstream().breaker).toBe('open');
    expect(stack.logs.join('')).toContain('IDV session circuit opened after 3 consecutive failures');

    const refused = await stack.startVerification();
    expect(refused.body.errors[0].extensions).toEqual({ code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: expect.any(Number) });
    expect([emulator.callCount('device') - devices, emulator.callCount('session') - sessions]).toEqual([3, 3]);

    // After the cool-down one start probes the session call; another that comes while the probe is
    // out makes its device, waits for the probe, and goes through once it succeeds.
    emulator.clearFaults();
    emulator.inject('session', { kind: 'delay', ms: 600 }, 1);
    const otherUser = await stack.token('another-user');
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const probe = stack.startVerification();
    await eventually(() => stack.gateway.upstream().breaker === 'half-open', 'the probe');
    // Another user's: the same user's would join the probe's start in flight (a double tap).
    const whileProbing = await stack.startVerification({ token: otherUser });
    expect(whileProbing.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    expect((await probe).body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    expect(stack.gateway.upstream().breaker).toBe('closed');
  });
});

describe("the platform's Retry-After", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ IDV_DEVICE_RETRIES: '0' });
  });
  afterAll(() => stack.close());
  beforeEach(() => {
    stack.emulator.clearFaults();
    stack.emulator.resetRecords();
  });

  it('holds every call until it has passed: other users get IDV_UNAVAILABLE at once, with what is left of it', async () => {
    stack.emulator.inject('session', { kind: 'status', status: 429, headers: { 'retry-after': '2' } });
    const limited = await stack.startVerification({ token: await stack.token('user-limited') });
    expect(limited.body.errors[0].extensions).toEqual({ code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: 2 });
    expect(stack.logs.join('')).toContain('answered 429 with Retry-After');

    // The limit is the gateway's key, not one user's: nobody's call goes out, not even a device call.
    const others = await Promise.all(Array.from({ length: 5 }, async (_, i) => stack.startVerification({ token: await stack.token(`user-other-${i}`) })));
    for (const response of others) {
      expect(response.body.errors[0].extensions).toEqual({ code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: expect.any(Number) });
      expect(response.body.errors[0].extensions.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(response.body.errors[0].extensions.retryAfterSeconds).toBeLessThanOrEqual(2);
    }
    expect(stack.emulator.callCount('device')).toBe(1);
    expect(stack.emulator.callCount('session')).toBe(1);
    expect(stack.gateway.upstream().breaker).toBe('closed');

    await eventually(async () => (await stack.startVerification()).body.data?.startVerification !== undefined, 'the hold to end');
    expect(stack.emulator.callCount('session')).toBe(2);
  });

  it('holds for at most a minute, while the client that got it hears the whole Retry-After', async () => {
    const capped = await startStack({ IDV_DEVICE_RETRIES: '0' });
    try {
      capped.emulator.inject('device', { kind: 'status', status: 503, headers: { 'retry-after': '3600' } });
      const first = await capped.startVerification();
      expect(first.body.errors[0].extensions.retryAfterSeconds).toBe(3600);
      const next = await capped.startVerification();
      expect(next.body.errors[0].extensions.retryAfterSeconds).toBeGreaterThanOrEqual(59);
      expect(next.body.errors[0].extensions.retryAfterSeconds).toBeLessThanOrEqual(60);
      expect(capped.emulator.callCount('device')).toBe(1);
    } finally {
      await capped.close();
    }
  });

  it('also stops a retry that was waiting when another call started the hold', async () => {
    const emulator = await startEmulator({ apiKey: TEST_API_KEY, workflowIds: ['wf'] });
    const client = new IdvApiClient({ baseUrl: emulator.url, apiKey: TEST_API_KEY, apiKeyScheme: null, timeoutMs: 1000 });
    const settings = { ...parseConfig({}).idv.resilience, deviceRetries: 2 };
    // random() = 1: the first retry waits the whole 100 ms of its backoff.
    const platform = new ResilientIdvPlatform(client, settings, capturingLogger('silent').logger, {}, () => 1);
    try {
      emulator.inject('device', { kind: 'status', status: 503 });
      emulator.inject('session', { kind: 'status', status: 429, headers: { 'retry-after': '30' } });
      const retrying = platform.createEphemeralDevice(3600).catch((error: unknown) => error);
      await eventually(() => emulator.callCount('device') === 1, 'the first device attempt');
      const limited = await platform.startSession({ token: 'Token x', workflowId: 'wf', externalUserId: 'u' }).catch((error: unknown) => error);
      expect(limited).toMatchObject({ details: { status: 429, retryAfterSeconds: 30 } });
      expect(await retrying).toMatchObject({ kind: 'unavailable', step: 'device', details: { status: 503, retryAfterSeconds: 30 } });
      expect(emulator.callCount('device')).toBe(1);
    } finally {
      client.close();
      await emulator.close();
    }
  });

  it('is not a hold when a refusal carries it', async () => {
    stack.emulator.inject('device', { kind: 'status', status: 401, headers: { 'retry-after': '30' } });
    expect((await stack.startVerification()).body.errors[0].extensions.code).toBe('IDV_FAILED');
    expect((await stack.startVerification()).body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
  });
});

describe('bulkhead', () => {
  it('lets a bounded number work and wait, and refuses the rest at once with a retry hint', async () => {
    const stack = await startStack({ IDV_MAX_CONCURRENCY: '2', IDV_MAX_QUEUE: '2', IDV_QUEUE_WAIT_MS: '5000' });
    try {
      stack.emulator.inject('device', { kind: 'delay', ms: 300 }, Infinity);
      const responses = await Promise.all(Array.from({ length: 8 }, async (_, i) => stack.startVerification({ token: await stack.token(`bulk-${i}`) })));
      const handoffs = responses.filter((response) => response.body.data?.startVerification);
      const refused = responses.filter((response) => response.body.errors?.[0]?.extensions.code === 'IDV_UNAVAILABLE');
      expect(handoffs).toHaveLength(4);
      expect(refused).toHaveLength(4);
      for (const response of refused) expect(response.body.errors[0].extensions).toEqual({ code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: 1 });
      expect(stack.emulator.callCount('device')).toBe(4);
      expect(stack.gateway.upstream()).toMatchObject({ active: 0, queued: 0 });
    } finally {
      await stack.close();
    }
  });

  it('refuses at the door, with 503 and before any GraphQL work, what it could not even queue', async () => {
    const stack = await startStack({ IDV_MAX_CONCURRENCY: '1', IDV_MAX_QUEUE: '1', IDV_QUEUE_WAIT_MS: '5000' });
    try {
      stack.emulator.inject('device', { kind: 'delay', ms: 300 }, Infinity);
      const tokens = await Promise.all(Array.from({ length: 6 }, (_, i) => stack.token(`door-${i}`)));
      const responses = await Promise.all(tokens.map((token) => stack.startVerification({ token })));
      const handoffs = responses.filter((response) => response.body.data?.startVerification);
      const shed = responses.filter((response) => response.status === 503);
      expect(handoffs).toHaveLength(2);
      expect(shed).toHaveLength(4);
      for (const response of shed) {
        expect(response.body).toEqual({
          errors: [{ message: expect.any(String), extensions: { code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: 1 } }],
        });
        expect(response.headers.get('retry-after')).toBe('1');
        expect(response.headers.get('cache-control')).toBe('no-store');
      }
      expect(stack.emulator.callCount('device')).toBe(2);
      // Every admitted request gave its place back.
      expect((await stack.startVerification()).body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    } finally {
      await stack.close();
    }
  });

  it('gives up on a queue slot after IDV_QUEUE_WAIT_MS', async () => {
    const stack = await startStack({ IDV_MAX_CONCURRENCY: '1', IDV_MAX_QUEUE: '10', IDV_QUEUE_WAIT_MS: '100' });
    try {
      stack.emulator.inject('device', { kind: 'delay', ms: 600 }, Infinity);
      // Three callers: one caller's identical concurrent requests would be joined into one (single flight).
      const responses = await Promise.all(Array.from({ length: 3 }, async (_, i) => stack.startVerification({ token: await stack.token(`queued-${i}`) })));
      const codes = responses.map((response) => response.body.errors?.[0]?.extensions.code ?? 'OK');
      expect(codes.sort()).toEqual(['IDV_UNAVAILABLE', 'IDV_UNAVAILABLE', 'OK']);
      expect(stack.emulator.callCount('device')).toBe(1);
    } finally {
      await stack.close();
    }
  });
});

describe('a caller who goes away', () => {
  // With a key too: before the session call is sent, no session can exist to record.
  it.each([['without', undefined], ['with', 'tap-0']])('stops the upstream work started for them (%s an idempotency key)', async (_with, idempotencyKey) => {
    const stack = await startStack();
    try {
      stack.emulator.inject('device', { kind: 'delay', ms: 400 }, 1);
      const request = http.request(stack.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await stack.token('leaver')}` },
      });
      request.on('error', () => undefined);
      request.end(JSON.stringify({ query: START_VERIFICATION, variables: { input: idempotencyKey ? { idempotencyKey } : undefined } }));
      await eventually(() => stack.emulator.callCount('device') === 1, 'the device call');
      request.destroy();
      await eventually(() => stack.logs.some((line) => line.includes('caller went away')), 'the abort to be logged');
      // Past the point the device call would have answered: no session was started for nobody.
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(stack.emulator.callCount('session')).toBe(0);
      expect((await stack.startVerification()).body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    } finally {
      await stack.close();
    }
  });

  it('finishes and records a start with an idempotency key, so that the retry gets it instead of a second session', async () => {
    const stack = await startStack();
    try {
      // The session call is on its way when the app's connection drops.
      stack.emulator.inject('session', { kind: 'delay', ms: 400 }, 1);
      const token = await stack.token('dropped');
      const request = http.request(stack.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
      request.on('error', () => undefined);
      request.end(JSON.stringify({ query: START_VERIFICATION, variables: { input: { idempotencyKey: 'tap-1' } } }));
      await eventually(() => stack.emulator.callCount('session') === 1, 'the session call');
      request.destroy();
      await eventually(() => stack.emulator.sessions.size === 1, 'the session to be created');

      const retry = await stack.startVerification({ token, idempotencyKey: 'tap-1' });
      expect(retry.body.data.startVerification).toMatchObject({ reused: true, sessionId: [...stack.emulator.sessions.keys()][0] });
      expect(stack.emulator.callCount('session')).toBe(1);
    } finally {
      await stack.close();
    }
  });

  it('lets such a session call finish when the gateway shuts down meanwhile, instead of cutting it', async () => {
    const stack = await startStack({ IDV_TIMEOUT_MS: '5000', IDV_DEADLINE_MS: '8000' });
    try {
      // Longer than the drain's wait for operations to log (2 s), within the wait for starts (2 s more).
      stack.emulator.inject('session', { kind: 'delay', ms: 3000 }, 1);
      const request = http.request(stack.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await stack.token('dropped')}` } });
      request.on('error', () => undefined);
      request.end(JSON.stringify({ query: START_VERIFICATION, variables: { input: { idempotencyKey: 'tap-2' } } }));
      await eventually(() => stack.emulator.callCount('session') === 1, 'the session call');
      request.destroy();
      await stack.gateway.stop();
      // The call was answered, not reset by the upstream client closing under it.
      expect(stack.logs.join('')).not.toContain('IDV session call failed');
      expect(stack.emulator.sessions.size).toBe(1);
    } finally {
      await stack.close();
    }
  });
});
