import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorOf, eventually, gate, handoffOf, JOINED, logCount, expectOneSession } from './support/duplicates.js';
import { FLOWS, startFlowStack } from './support/flows.js';
import { START_VERIFICATION, startStack, type TestStack } from './support/stack.js';

/** Issue 5 on one instance with the in-process state (no REDIS_URL). */
const LEFT = 'a caller waiting on a start went away';

describe('duplicate protection, in process', () => {
  let stack: TestStack;
  beforeAll(async () => {
    // A long upstream timeout: some tests hold an upstream call open while requests line up.
    stack = await startStack({ IDV_TIMEOUT_MS: '20000' });
  });
  afterAll(() => stack.close());
  beforeEach(() => {
    stack.emulator.clearFaults();
    stack.emulator.resetRecords();
  });

  it('reports in-process state', () => {
    expect(stack.gateway.sharedState()).toEqual({ configured: 'memory', active: 'memory' });
  });

  it('replays the same handoff for the same key and parameters, without a new upstream session', async () => {
    const token = await stack.token('replay-user');
    const key = randomUUID();
    const first = handoffOf(await stack.startVerification({ token, idempotencyKey: key, locale: 'de-ch' }));
    // The same effective parameters: the default workflow named, the locale in another case.
    const again = handoffOf(await stack.startVerification({ token, idempotencyKey: key, workflow: 'kyc', locale: 'DE-CH' }));
    expect(first.reused).toBe(false);
    expect(again).toEqual({ ...first, reused: true });
    expect(stack.emulator.callCount('session')).toBe(1);
    expect(stack.emulator.sessions.get(first.sessionId)?.metadata).toEqual({ externalUserId: 'replay-user' });
  });

  it.each([
    ['another workflow', { workflow: 'age' }],
    ['another locale', { locale: 'fr' }],
    ['no locale', {}],
  ])('refuses the same key with %s: BAD_USER_INPUT, IDEMPOTENCY_KEY_REUSED, no upstream call', async (_name, other) => {
    const token = await stack.token('reuse-user');
    const key = randomUUID();
    handoffOf(await stack.startVerification({ token, idempotencyKey: key, locale: 'en' }));
    stack.emulator.resetRecords();
    const error = errorOf(await stack.startVerification({ token, idempotencyKey: key, ...other }));
    expect(error.extensions).toEqual({ code: 'BAD_USER_INPUT', retryable: false, field: 'idempotencyKey', reason: 'IDEMPOTENCY_KEY_REUSED' });
    expect(error.message).toMatch(/already used with other parameters/);
    expect(stack.emulator.requests).toEqual([]);
  });

  it('scopes keys to the caller: the same key from another user is another session, bound to that user', async () => {
    const key = 'shared-key-1';
    const alice = handoffOf(await stack.startVerification({ token: await stack.token('alice'), idempotencyKey: key }));
    const bob = handoffOf(await stack.startVerification({ token: await stack.token('bob'), idempotencyKey: key, workflow: 'age' }));
    expect(bob.reused).toBe(false);
    expect(bob.sessionId).not.toBe(alice.sessionId);
    expect(stack.emulator.sessions.get(bob.sessionId)?.metadata).toEqual({ externalUserId: 'bob' });
    expect(stack.emulator.sessions.get(alice.sessionId)?.metadata).toEqual({ externalUserId: 'alice' });
  });

  it('does not let a failed attempt poison the key: a retry after IDV_UNAVAILABLE starts the session', async () => {
    const token = await stack.token('retry-user');
    const key = randomUUID();
    // The session call is never retried inside the gateway (it may have started a session).
    stack.emulator.inject('session', { kind: 'status', status: 503 });
    const failed = errorOf(await stack.startVerification({ token, idempotencyKey: key }));
    expect(failed.extensions).toMatchObject({ code: 'IDV_UNAVAILABLE', retryable: true });
    const retried = handoffOf(await stack.startVerification({ token, idempotencyKey: key }));
    expect(retried.reused).toBe(false);
    expect(handoffOf(await stack.startVerification({ token, idempotencyKey: key }))).toEqual({ ...retried, reused: true });
    expect(stack.emulator.callCount('session')).toBe(2);
  });

  it.each([
    ['empty', ''],
    ['256 characters', 'k'.repeat(256)],
    ['a control character', 'key\n1'],
    ['non-ASCII', 'clé'],
  ])('refuses an idempotencyKey that is %s, without calling the platform', async (_name, key) => {
    const error = errorOf(await stack.startVerification({ idempotencyKey: key }));
    expect(error.extensions).toEqual({ code: 'BAD_USER_INPUT', retryable: false, field: 'idempotencyKey' });
    expect(stack.emulator.requests).toEqual([]);
  });

  it('accepts a key of 255 printable characters', async () => {
    const key = `${' !~'.repeat(84)}abc`;
    expect(key).toHaveLength(255);
    expect(handoffOf(await stack.startVerification({ idempotencyKey: key, token: await stack.token('long-key') })).reused).toBe(false);
  });

  it.each([
    ['without a key', undefined],
    ['with the same key', 'double-tap-key'],
  ])('collapses 50 concurrent double taps %s into exactly one upstream session', async (_name, idempotencyKey) => {
    const token = await stack.token(`tapper-${idempotencyKey ?? 'nokey'}`);
    const joinedBefore = logCount(stack, JOINED);
    const held = gate();
    stack.emulator.inject('device', { kind: 'hold', until: held.until });
    const responses = Promise.all(Array.from({ length: 50 }, () => stack.startVerification({ token, idempotencyKey })));
    // Hold the one upstream call until all 49 others have joined it, so they are truly concurrent.
    await eventually(() => logCount(stack, JOINED) - joinedBefore === 49, '49 requests to join the one in flight');
    held.open();
    expectOneSession(await responses, stack.emulator);
  });

  it('gives a failure to everyone who joined it, and the next tap tries again', async () => {
    const token = await stack.token('failing-tapper');
    const joinedBefore = logCount(stack, JOINED);
    const held = gate();
    stack.emulator.inject('device', { kind: 'hold', until: held.until });
    stack.emulator.inject('session', { kind: 'status', status: 503, headers: { 'retry-after': '1' } });
    const responses = Promise.all(Array.from({ length: 5 }, () => stack.startVerification({ token })));
    await eventually(() => logCount(stack, JOINED) - joinedBefore === 4, '4 requests to join the one in flight');
    held.open();
    for (const response of await responses) {
      expect(errorOf(response).extensions).toEqual({ code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: 1 });
    }
    expect(stack.emulator.callCount('session')).toBe(1);
    // As told: after the Retry-After (which holds every upstream call until then).
    await sleep(1000);
    expect(handoffOf(await stack.startVerification({ token })).reused).toBe(false);
  });

  it('finishes the upstream work for a double tap whose first request went away', async () => {
    const token = await stack.token('leaving-tapper');
    const joinedBefore = logCount(stack, JOINED);
    const leftBefore = logCount(stack, LEFT);
    const held = gate();
    stack.emulator.inject('device', { kind: 'hold', until: held.until });
    const leaver = http.request(stack.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
    leaver.on('error', () => undefined);
    leaver.end(JSON.stringify({ query: START_VERIFICATION }));
    await eventually(() => stack.emulator.callCount('device') === 1, 'the device call');
    const stayer = stack.startVerification({ token });
    await eventually(() => logCount(stack, JOINED) - joinedBefore === 1, 'the second tap to join');
    leaver.destroy();
    // The gateway has seen the first caller leave; the work goes on for the second.
    await eventually(() => logCount(stack, LEFT) - leftBefore === 1, 'the first request to be seen leaving');
    held.open();
    const handoff = handoffOf(await stayer);
    expect(handoff.reused).toBe(true);
    expect(stack.emulator.callCount('session')).toBe(1);
    expect(stack.emulator.sessions.get(handoff.sessionId)?.metadata).toEqual({ externalUserId: 'leaving-tapper' });
  });

  describe('a keyed start whose caller went away once its session call was sent', () => {
    const WAITING_ON_STOPPED = 'waiting on an identical start whose callers all went away';

    /** The first attempt sent, its session call held, its caller gone; then the app's retry with the same key, waiting on it. */
    async function retryWhileTheFirstIsHeld(user: string, sessionAnswer?: Parameters<typeof stack.emulator.inject>[1]) {
      const token = await stack.token(user);
      const idempotencyKey = `stopped-${randomUUID()}`;
      const leftBefore = logCount(stack, LEFT);
      const waitingBefore = logCount(stack, WAITING_ON_STOPPED);
      const held = gate();
      stack.emulator.inject('session', { kind: 'hold', until: held.until, ...(sessionAnswer ? { then: sessionAnswer } : {}) });
      const leaver = http.request(stack.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
      leaver.on('error', () => undefined);
      leaver.end(JSON.stringify({ query: START_VERIFICATION, variables: { input: { idempotencyKey } } }));
      await eventually(() => stack.emulator.callCount('session') === 1, 'the first attempt\'s session call');
      leaver.destroy();
      await eventually(() => logCount(stack, LEFT) - leftBefore === 1, 'the first caller to be seen leaving');
      const retry = stack.startVerification({ token, idempotencyKey });
      await eventually(() => logCount(stack, WAITING_ON_STOPPED) - waitingBefore === 1, 'the retry to wait on the first attempt');
      held.open();
      return retry;
    }

    it('gives its handoff to the retry that waited on it', async () => {
      const handoff = handoffOf(await retryWhileTheFirstIsHeld('stopped-then-done'));
      expect(handoff.reused).toBe(true);
      expect(stack.emulator.callCount('session')).toBe(1);
      expect(stack.emulator.sessions.get(handoff.sessionId)?.metadata).toEqual({ externalUserId: 'stopped-then-done' });
    });

    it('starts afresh for the retry when it fails, rather than giving it the failure', async () => {
      const handoff = handoffOf(await retryWhileTheFirstIsHeld('stopped-then-failed', { kind: 'status', status: 500 }));
      expect(handoff.reused).toBe(false);
      expect(stack.emulator.callCount('session')).toBe(2);
      expect(stack.emulator.sessions.get(handoff.sessionId)?.metadata).toEqual({ externalUserId: 'stopped-then-failed' });
    });
  });

  it('keeps requests that are not concurrent, or not identical, apart', async () => {
    const token = await stack.token('separate-user');
    const first = handoffOf(await stack.startVerification({ token }));
    const second = handoffOf(await stack.startVerification({ token }));
    const [kyc, age] = (await Promise.all([stack.startVerification({ token }), stack.startVerification({ token, workflow: 'age' })])).map(handoffOf);
    expect(new Set([first.sessionId, second.sessionId, kyc?.sessionId, age?.sessionId]).size).toBe(4);
    expect([first, second, kyc, age].every((handoff) => handoff?.reused === false)).toBe(true);
  });
});

describe('the per-caller limit on new sessions', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_SECONDS: '600' });
  });
  afterAll(() => stack.close());

  it('answers RATE_LIMITED with retryAfterSeconds and no upstream call once a caller has started RATE_LIMIT_MAX sessions; replays are free', async () => {
    const token = await stack.token('busy-user');
    const first = handoffOf(await stack.startVerification({ token, idempotencyKey: 'k1' }));
    handoffOf(await stack.startVerification({ token }));
    handoffOf(await stack.startVerification({ token, workflow: 'age' }));
    // A replay is not a new session: still allowed at the limit, and free.
    expect(handoffOf(await stack.startVerification({ token, idempotencyKey: 'k1' }))).toEqual({ ...first, reused: true });
    const sessions = stack.emulator.callCount('session');

    const limited = await stack.startVerification({ token, idempotencyKey: 'k2' });
    expect(limited.status).toBe(200);
    expect(limited.body.data).toBeNull();
    const error = errorOf(limited);
    expect(error.extensions).toEqual({ code: 'RATE_LIMITED', retryable: true, retryAfterSeconds: expect.any(Number) });
    expect(error.extensions.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(error.extensions.retryAfterSeconds).toBeLessThanOrEqual(600);
    expect(error.message).toBe('Too many verifications were started for this account. Try again later.');
    expect(stack.emulator.callCount('session')).toBe(sessions);
    // The limited attempt did not bind k2 to anything: it is refused the same way, not as a reuse.
    expect(errorOf(await stack.startVerification({ token, idempotencyKey: 'k2', workflow: 'age' })).extensions.code).toBe('RATE_LIMITED');
    // Replays still work at the limit.
    expect(handoffOf(await stack.startVerification({ token, idempotencyKey: 'k1' })).sessionId).toBe(first.sessionId);
    // Counted for operators: two refusals, two key replays.
    const metrics = await (await fetch(stack.gateway.metricsUrl)).text();
    expect(metrics).toMatch(/^idv_gateway_rate_limited_total 2$/m);
    expect(metrics).toMatch(/^idv_gateway_idempotent_replays_total\{kind="key"\} 2$/m);
  });

  // "Starts that reach the platform": a start refused before it could cost a session is given back.
  it('does not count starts that cannot have created a session', async () => {
    const token = await stack.token('unlucky-user');
    const before = stack.emulator.callCount('session');
    // The device call fails (no session yet), the session call is refused (401), or answered 429.
    stack.emulator.inject('device', { kind: 'status', status: 503 }, 3);
    expect(errorOf(await stack.startVerification({ token })).extensions.code).toBe('IDV_UNAVAILABLE');
    stack.emulator.inject('session', { kind: 'status', status: 401 }, 2);
    for (let i = 0; i < 2; i += 1) expect(errorOf(await stack.startVerification({ token })).extensions.code).toBe('IDV_FAILED');
    stack.emulator.inject('session', { kind: 'status', status: 429 }, 1);
    expect(errorOf(await stack.startVerification({ token })).extensions.code).toBe('IDV_UNAVAILABLE');
    // A session call that may have created one counts: a 500.
    stack.emulator.inject('session', { kind: 'status', status: 500 }, 1);
    expect(errorOf(await stack.startVerification({ token })).extensions.code).toBe('IDV_UNAVAILABLE');
    expect(stack.emulator.callCount('session') - before).toBe(4);
    // Three allowed (RATE_LIMIT_MAX), one of them spent on the 500: two more, then the limit.
    handoffOf(await stack.startVerification({ token }));
    handoffOf(await stack.startVerification({ token }));
    expect(errorOf(await stack.startVerification({ token })).extensions.code).toBe('RATE_LIMITED');
  });

  it('counts per caller', async () => {
    expect(handoffOf(await stack.startVerification({ token: await stack.token('another-user') })).reused).toBe(false);
  });
});

describe.each(FLOWS)('idempotent replay in IDV_FLOW $name', (flow) => {
  it('returns the recorded handoff, URLs and expiry included', async () => {
    const stack = await startFlowStack(flow);
    try {
      const token = await stack.token('flow-user');
      const first = handoffOf(await stack.startVerification({ token, idempotencyKey: 'flow-key' }));
      const upstream = stack.emulator.requests.length;
      expect(handoffOf(await stack.startVerification({ token, idempotencyKey: 'flow-key' }))).toEqual({ ...first, reused: true });
      expect(stack.emulator.requests).toHaveLength(upstream);
    } finally {
      await stack.close();
    }
  });
});
