import http from 'node:http';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createHash, randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { MemoryState } from '../src/state/memory.js';
import { SharedFlights } from '../src/state/flight.js';
import { connectRedis, describeRedisError, RedisState } from '../src/state/redis.js';
import { APQ_SHARING, ApqCache } from '../src/state/apq-cache.js';
import { FailoverState } from '../src/state/failover.js';
import { capturingLogger } from './support/log-capture.js';
import { errorOf, eventually, FOLLOWING, gate, handoffOf, JOINED, logCount, expectOneSession, TEXT } from './support/duplicates.js';
import { START_VERIFICATION, startStack, type TestStack } from './support/stack.js';

const run = promisify(execFile);

/**
 * Issue 5 across instances, against a real Redis: REDIS_URL (CI sets redis://127.0.0.1:6379).
 * Every run writes under its own key prefix and deletes it afterwards. The outage test starts
 * and kills a redis-server of its own on a spare port.
 */
const REDIS_URL = process.env.REDIS_URL;
const describeWithRedis = REDIS_URL ? describe : describe.skip;
if (!REDIS_URL) {
  console.warn('Skipping the Redis tests of duplicate protection: REDIS_URL is not set (e.g. REDIS_URL=redis://127.0.0.1:6379).');
}

/** The keys matching `pattern`, found with SCAN: the Redis is shared, and KEYS would block it. */
async function keysMatching(url: string, pattern: string): Promise<string[]> {
  const client = new Redis(url);
  try {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
    return found;
  } finally {
    client.disconnect();
  }
}

async function deletePrefix(url: string, prefix: string): Promise<void> {
  const keys = await keysMatching(url, `${prefix}*`);
  if (keys.length === 0) return;
  const client = new Redis(url);
  try {
    for (let i = 0; i < keys.length; i += 500) await client.del(...keys.slice(i, i + 500));
  } finally {
    client.disconnect();
  }
}

/** Two gateway instances on their own ports, one emulator (the platform) and one Redis between them. */
async function twoInstances(prefix: string, env: Record<string, string> = {}): Promise<[TestStack, TestStack]> {
  const shared = { REDIS_URL: REDIS_URL ?? '', REDIS_KEY_PREFIX: prefix, IDV_TIMEOUT_MS: '20000', ...env };
  const a = await startStack(shared);
  try {
    const b = await startStack(shared, {}, {}, a.emulator);
    return [a, b];
  } catch (error) {
    await a.close();
    throw error;
  }
}

describeWithRedis(`duplicate protection on Redis (REDIS_URL), two gateway instances`, () => {
  const prefix = `idv-gateway-test:${randomUUID()}:`;
  let a: TestStack;
  let b: TestStack;
  beforeAll(async () => {
    [a, b] = await twoInstances(prefix, { RATE_LIMIT_MAX: '0' });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await deletePrefix(REDIS_URL ?? '', prefix);
  });
  beforeEach(() => {
    a.emulator.clearFaults();
    a.emulator.resetRecords();
  });

  it('keeps no handoff, token or key in clear in Redis', async () => {
    const idempotencyKey = `clear-check-${randomUUID()}`;
    const first = handoffOf(await a.startVerification({ token: await a.token('sealed-user'), idempotencyKey }));
    const replay = handoffOf(await b.startVerification({ token: await b.token('sealed-user'), idempotencyKey }));
    expect(replay).toMatchObject({ sessionId: first.sessionId, mobileUrl: first.mobileUrl, reused: true });
    const token = a.emulator.sessions.get(first.sessionId)?.token ?? 'missing';
    const client = new Redis(REDIS_URL ?? '');
    const stored: string[] = [];
    try {
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
        cursor = next;
        for (const key of keys) {
          stored.push(key);
          if ((await client.type(key)) === 'string') stored.push((await client.get(key)) ?? '');
        }
      } while (cursor !== '0');
    } finally {
      client.disconnect();
    }
    const everything = stored.join('\n');
    expect(stored.some((entry) => entry.includes('idem:'))).toBe(true);
    for (const secret of [token.replace(/^Token /, ''), first.sessionId, 'sealed-user', idempotencyKey, 'mobile?authorization']) {
      expect(everything).not.toContain(secret);
    }
  });

  it('treats a record it cannot open (tampered, or sealed under another API key) as absent, not as a failure', async () => {
    const token = await a.token('tampered-user');
    const first = handoffOf(await a.startVerification({ token, idempotencyKey: 'tampered-key' }));
    const client = new Redis(REDIS_URL ?? '');
    try {
      const records: string[] = [];
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}idem:*`, 'COUNT', 1000);
        cursor = next;
        records.push(...keys);
      } while (cursor !== '0');
      expect(records.length).toBeGreaterThan(0);
      for (const record of records) {
        const stored = JSON.parse((await client.get(record)) ?? '{}') as { params: string; handoff: string };
        await client.set(record, JSON.stringify({ ...stored, handoff: `${stored.handoff.slice(0, -4)}AAAA` }), 'KEEPTTL');
      }
    } finally {
      client.disconnect();
    }
    const again = handoffOf(await b.startVerification({ token, idempotencyKey: 'tampered-key' }));
    expect(again.reused).toBe(false);
    expect(again.sessionId).not.toBe(first.sessionId);
    expect(b.logs.join('')).toContain('an idempotency record could not be read; treated as absent');
  });

  it('gives a double tap the handoff of an earlier one whose caller left while it followed the other instance', async () => {
    const token = await a.token('left-follower');
    const held = gate();
    a.emulator.inject('device', { kind: 'hold', until: held.until });
    const sessionsBefore = a.emulator.sessions.size;
    const leader = b.startVerification({ token });
    await eventually(() => b.gateway.upstream().active === 1, 'the leader on b to reach the platform');
    // A tap on a follows b's start, and its caller goes away: a's start is stopped, yet still waits on b.
    const followingBefore = logCount(a, FOLLOWING);
    const left = http.request(a.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
    left.on('error', () => undefined);
    left.end(JSON.stringify({ query: START_VERIFICATION }));
    await eventually(() => logCount(a, FOLLOWING) > followingBefore, 'the tap on a to follow');
    left.destroy();
    await eventually(() => a.logs.some((line) => line.includes('a caller waiting on a start went away')), 'the tap to be stopped');
    // Another tap on a, while the stopped one is still in flight there: b's handoff, not a second session.
    const third = a.startVerification({ token });
    held.open();
    const first = handoffOf(await leader);
    expect(handoffOf(await third)).toEqual({ ...first, reused: true });
    expect(a.emulator.sessions.size - sessionsBefore).toBe(1);
  });

  it('reports Redis as the state in use, in /readyz and the metrics too', async () => {
    expect(a.gateway.sharedState()).toEqual({ configured: 'redis', active: 'redis' });
    expect(b.gateway.sharedState()).toEqual({ configured: 'redis', active: 'redis' });
    expect(await readyz(a)).toEqual({ status: 200, redis: { state: 'up' } });
    expect(await redisAvailable(b)).toBe('1');
  });

  it('replays a key on the other instance, and refuses it there with other parameters', async () => {
    const token = await a.token('cross-user');
    const first = handoffOf(await a.startVerification({ token, idempotencyKey: 'cross-key' }));
    expect(handoffOf(await b.startVerification({ token, idempotencyKey: 'cross-key' }))).toEqual({ ...first, reused: true });
    expect(errorOf(await b.startVerification({ token, idempotencyKey: 'cross-key', workflow: 'age' })).extensions.reason).toBe('IDEMPOTENCY_KEY_REUSED');
    // Scoped to the caller on Redis too.
    const other = handoffOf(await b.startVerification({ token: await b.token('cross-other'), idempotencyKey: 'cross-key' }));
    expect(other.sessionId).not.toBe(first.sessionId);
    expect(a.emulator.callCount('session')).toBe(2);
  });

  it('refuses a key sent with other parameters while the first start is still in flight on the other instance', async () => {
    const token = await a.token('racing-user');
    const held = gate();
    a.emulator.inject('device', { kind: 'hold', until: held.until });
    const first = a.startVerification({ token, idempotencyKey: 'racing-key' });
    await eventually(() => a.emulator.callCount('device') === 1, 'the first start to reach the platform');
    const followingBefore = logCount(b, FOLLOWING);
    const other = b.startVerification({ token, idempotencyKey: 'racing-key', workflow: 'age' });
    await eventually(() => logCount(b, FOLLOWING) > followingBefore, 'the second to wait on the first');
    held.open();
    expect(handoffOf(await first).workflow).toBe('kyc');
    expect(errorOf(await other).extensions.reason).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(a.emulator.callCount('session')).toBe(1);
  });

  it.each([
    ['with the same key', 'spread-key'],
    ['without a key', undefined],
  ])('makes one upstream session of concurrent requests %s spread across both instances', async (_name, idempotencyKey) => {
    const token = await a.token(`spread-${idempotencyKey ?? 'nokey'}`);
    const before = { joined: logCount(a, JOINED) + logCount(b, JOINED), following: logCount(a, FOLLOWING) + logCount(b, FOLLOWING) };
    const held = gate();
    a.emulator.inject('device', { kind: 'hold', until: held.until });
    const responses = Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).startVerification({ token, idempotencyKey })));
    // Each instance has one local leader; the one that did not win the Redis lease follows the other.
    await eventually(
      () =>
        logCount(a, JOINED) + logCount(b, JOINED) - before.joined === 38 &&
        logCount(a, FOLLOWING) + logCount(b, FOLLOWING) - before.following >= 1 &&
        a.emulator.callCount('device') === 1,
      'the requests on both instances to line up behind one upstream call',
    );
    held.open();
    expectOneSession(await responses, a.emulator);
  });

  it('shares persisted queries (APQ) between the instances', async () => {
    const query = 'query Workflows { workflows }';
    const sha256Hash = createHash('sha256').update(query).digest('hex');
    const extensions = { persistedQuery: { version: 1, sha256Hash } };
    const headers = { authorization: `Bearer ${await a.token()}` };
    expect((await a.post({ query, extensions }, headers)).body.data).toEqual({ workflows: ['kyc', 'age'] });
    expect((await b.post({ extensions }, headers)).body).toEqual({ data: { workflows: ['kyc', 'age'] } });
  });

  it('keeps a persisted query past the shared size bound on its own instance, out of Redis', async () => {
    // Valid and within the token limit: comments are not tokens, so a caller can pad any query.
    const query = `query Padded { workflows }\n${`# ${'x'.repeat(1000)}\n`.repeat(20)}`;
    expect(Buffer.byteLength(query)).toBeGreaterThan(APQ_SHARING.maxBytes);
    const sha256Hash = createHash('sha256').update(query).digest('hex');
    const extensions = { persistedQuery: { version: 1, sha256Hash } };
    const headers = { authorization: `Bearer ${await a.token()}` };
    expect((await a.post({ query, extensions }, headers)).body).toEqual({ data: { workflows: ['kyc', 'age'] } });
    expect((await a.post({ extensions }, headers)).body).toEqual({ data: { workflows: ['kyc', 'age'] } });
    expect((await b.post({ extensions }, headers)).body.errors?.[0]?.extensions?.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    const client = new Redis(REDIS_URL ?? '');
    try {
      expect(await client.exists(`${prefix}apq:${sha256Hash}`)).toBe(0);
    } finally {
      client.disconnect();
    }
  });
});

describeWithRedis('the APQ cache on Redis', () => {
  const prefix = `idv-gateway-test:${randomUUID()}:`;
  const client = new Redis(REDIS_URL ?? '', { lazyConnect: true });
  afterAll(async () => {
    client.disconnect();
    await deletePrefix(REDIS_URL ?? '', prefix);
  });

  it('shares at most its budget of new queries per window, keeps the rest on the instance and says so once', async () => {
    const windowSeconds = 3600;
    // Not across a window's end: the count would start again halfway.
    const leftMs = windowSeconds * 1000 - (Date.now() % (windowSeconds * 1000));
    if (leftMs < 3000) await sleep(leftMs + 100);
    const { lines, logger } = capturingLogger('warn');
    const redis = new RedisState(connectRedis(REDIS_URL ?? ''), prefix, null);
    const failover = new FailoverState(redis, new MemoryState(null), logger);
    await failover.connect(2000);
    const cache = new ApqCache(redis, failover, logger, { maxBytes: 1024, newPerWindow: 2, windowSeconds });
    try {
      await cache.set('apq:one', 'query One { workflows }', { ttl: 60 });
      await cache.set('apq:two', 'query Two { workflows }', { ttl: 60 });
      // Already shared: registered again by another client, it takes nothing from the budget.
      await cache.set('apq:one', 'query One { workflows }', { ttl: 60 });
      await cache.set('apq:three', 'query Three { workflows }', { ttl: 60 });
      await cache.set('apq:four', 'query Four { workflows }', { ttl: 60 });
      expect(await client.mget(['one', 'two', 'three', 'four'].map((name) => `${prefix}apq:${name}`))).toEqual([
        'query One { workflows }',
        'query Two { workflows }',
        null,
        null,
      ]);
      expect(await cache.get('apq:three')).toBe('query Three { workflows }');
      expect(await client.ttl(`${prefix}apq:one`)).toBeGreaterThan(50);
      // The count ends with its window (the hour), not a whole window after its first new query.
      const windowMs = windowSeconds * 1000;
      const windowLeftMs = windowMs - (Date.now() % windowMs);
      const budgetTtlMs = await client.pttl(`${prefix}apq-budget:${Math.floor(Date.now() / windowMs)}`);
      expect(budgetTtlMs).toBeGreaterThan(0);
      // Give or take the time the script took to reach Redis after the gateway read its clock.
      expect(budgetTtlMs).toBeLessThanOrEqual(windowLeftMs + 1000);
      const warnings = lines.filter((line) => line.includes('shared budget of new queries is spent'));
      expect(warnings).toHaveLength(1);
      expect(JSON.parse(warnings[0] ?? '{}')).toMatchObject({ level: 40, newPerWindow: 2, windowSeconds });
      expect(failover.status.active).toBe('redis');
    } finally {
      await failover.close();
    }
  });
});

describeWithRedis('the per-caller limit on Redis, across two instances', () => {
  const prefix = `idv-gateway-test:${randomUUID()}:`;
  let a: TestStack;
  let b: TestStack;
  beforeAll(async () => {
    [a, b] = await twoInstances(prefix, { RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_SECONDS: '600' });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await deletePrefix(REDIS_URL ?? '', prefix);
  });

  it('counts the sessions a caller starts on either instance', async () => {
    const token = await a.token('limited-user');
    const first = handoffOf(await a.startVerification({ token, idempotencyKey: 'limit-key' }));
    handoffOf(await b.startVerification({ token }));
    handoffOf(await a.startVerification({ token }));
    expect(handoffOf(await b.startVerification({ token, idempotencyKey: 'limit-key' })).sessionId).toBe(first.sessionId);
    for (const stack of [a, b]) {
      const error = errorOf(await stack.startVerification({ token }));
      expect(error.extensions).toEqual({ code: 'RATE_LIMITED', retryable: true, retryAfterSeconds: expect.any(Number) });
    }
    expect(a.emulator.callCount('session')).toBe(3);
  });

  it('keeps nothing in Redis for a refusal, whatever the rate a caller over the limit sends at', async () => {
    const token = await a.token('over-limit-user');
    for (let i = 0; i < 3; i += 1) handoffOf(await a.startVerification({ token }));
    const keys = async (kind: string) => (await keysMatching(REDIS_URL ?? '', `${prefix}${kind}:*`)).length;
    const results = await keys('result');
    // Each with its own key, so none joins another in this process: each leads a flight of its own.
    for (let i = 0; i < 60; i += 1) {
      const stack = i % 2 === 0 ? a : b;
      expect(errorOf(await stack.startVerification({ token, idempotencyKey: `refused-${i}` })).extensions.code).toBe('RATE_LIMITED');
    }
    // Before, each refusal wrote its outcome for followers: a result key of 60 s apiece.
    expect(await keys('result')).toBe(results);
    expect(await keys('lock')).toBe(0);
  });
});

describeWithRedis('an instance shut down while it leads a start others wait on', () => {
  const prefix = `idv-gateway-test:${randomUUID()}:`;
  afterAll(() => deletePrefix(REDIS_URL ?? '', prefix));

  it('frees the lease before it closes its state, and a follower on another instance takes over', async () => {
    const [a, b] = await twoInstances(prefix, { RATE_LIMIT_MAX: '0', SHUTDOWN_GRACE_MS: '300', IDV_DEADLINE_MS: '20000' });
    try {
      const token = await a.token('shutdown-user');
      const held = gate();
      a.emulator.inject('device', { kind: 'hold', until: held.until });
      // Double taps without a key: a keyed start is not stopped when its caller is cut off (it
      // finishes and is recorded for the retry), so this one would succeed.
      const leader = a.startVerification({ token }).catch(() => null);
      await eventually(() => a.emulator.callCount('device') === 1, 'the leader to reach the platform');
      const followingBefore = logCount(b, FOLLOWING);
      const follower = b.startVerification({ token });
      await eventually(() => logCount(b, FOLLOWING) > followingBefore, 'the other instance to follow');
      const started = performance.now();
      await a.gateway.stop();
      await leader;
      // The leader's callers were cut off: its failure is nobody's answer. The follower, still
      // waiting, leads once the lease is dropped, within moments, not after the lease's 22 s.
      const taken = handoffOf(await follower);
      expect(taken.reused).toBe(false);
      expect(performance.now() - started).toBeLessThan(5000);
      expect(await keysMatching(REDIS_URL ?? '', `${prefix}lock:*`)).toEqual([]);
      held.open();
    } finally {
      await b.close();
      await a.close();
    }
  });
});

// A point given back after its window has ended would start the next window below zero: one more
// start than the limit. The refund belongs to the store and window that counted the point.
describe.each([
  ['in memory', false],
  ['on Redis', true],
])('the per-caller limit %s: a refund after the window has ended', (_name, onRedis) => {
  const prefix = `idv-gateway-test:${randomUUID()}:`;
  const run = onRedis && !REDIS_URL ? it.skip : it;
  run('gives nothing to the next window', async () => {
    const limit = { max: 1, windowSeconds: 1 };
    const client = onRedis ? connectRedis(REDIS_URL ?? '') : null;
    if (client) await eventually(() => client.status === 'ready', 'the Redis connection');
    const state = client ? new RedisState(client, prefix, limit) : new MemoryState(limit);
    try {
      const first = await state.consume('caller');
      expect(first.allowed).toBe(true);
      if (!first.allowed) return;
      // Within the window, a refund gives the point back.
      await first.refund();
      const second = await state.consume('caller');
      expect(second.allowed).toBe(true);
      await sleep(1100);
      if (second.allowed) await second.refund();
      expect((await state.consume('caller')).allowed).toBe(true);
      expect((await state.consume('caller')).allowed).toBe(false);
    } finally {
      await state.close();
      if (client) await deletePrefix(REDIS_URL ?? '', prefix);
    }
  });
});

describeWithRedis('the cross-instance single flight, when a leader is gone', () => {
  const prefix = `idv-gateway-test:${randomUUID()}:`;
  let state: RedisState;
  beforeAll(async () => {
    const client = connectRedis(REDIS_URL ?? '');
    state = new RedisState(client, prefix, null);
    // No offline queue: commands sent before the connection is ready would fail.
    await eventually(() => client.status === 'ready', 'the Redis connection');
  });
  afterAll(async () => {
    await state?.close();
    await deletePrefix(REDIS_URL ?? '', prefix);
  });

  it('lets a follower lead once a crashed leader\'s lease runs out', async () => {
    // A leader that took the lease and died: nobody renews or releases it.
    expect(await state.claim('lock:crashed', 'dead-leader', 300)).toBe('dead-leader');
    let followed = 0;
    const flights = new SharedFlights(state, { leaseMs: 300, maxWaitMs: 10_000, resultTtlMs: 10_000 });
    const outcome = await flights.run('crashed', () => followed++, async () => 'done by the follower', TEXT);
    expect(outcome).toEqual({ value: 'done by the follower', led: true });
    expect(followed).toBe(1);
  });

  it('gives followers the outcome of a leader that finished', async () => {
    const flights = new SharedFlights(state, { leaseMs: 5000, maxWaitMs: 10_000, resultTtlMs: 10_000 });
    const held = gate();
    let entered!: () => void;
    const leading = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const leader = flights.run('finished', () => {}, async () => {
      entered();
      await held.until;
      return 'the leader\'s value';
    }, TEXT);
    await leading;
    const follower = flights.run('finished', () => held.open(), async () => 'not expected', TEXT);
    expect(await leader).toEqual({ value: 'the leader\'s value', led: true });
    expect(await follower).toEqual({ value: 'the leader\'s value', led: false });
  });

  it('takes no lease and keeps no result on the in-process state, which no other process sees', async () => {
    const memory = new MemoryState(null);
    const flights = new SharedFlights(memory, { leaseMs: 300, maxWaitMs: 10_000, resultTtlMs: 10_000 });
    await memory.claim('lock:held', 'someone', 10_000);
    expect(await flights.run('held', () => {}, async () => 'mine', TEXT)).toEqual({ value: 'mine', led: true });
    await memory.close();
  });
});

const UNREACHABLE = 'Redis is unreachable: idempotency, single flight and rate limits now hold per instance only, until it is back';
const STILL_UNREACHABLE = 'Redis is still unreachable, for another reason';

/** The `err` of each log line with this message, in order. */
function reasonsLogged(stack: TestStack, message: string): unknown[] {
  return stack.logs.map((line) => JSON.parse(line) as { msg?: string; err?: unknown }).filter((line) => line.msg === message).map((line) => line.err);
}

async function readyz(stack: TestStack): Promise<{ status: number; redis: unknown }> {
  const response = await fetch(new URL('/readyz', stack.url));
  const body = (await response.json()) as { dependencies: { redis: unknown } };
  return { status: response.status, redis: body.dependencies.redis };
}

/** The idv_gateway_redis_available sample, as the scrape shows it. */
async function redisAvailable(stack: TestStack): Promise<string | undefined> {
  const text = await (await fetch(stack.gateway.metricsUrl)).text();
  return /^idv_gateway_redis_available (\S+)$/m.exec(text)?.[1];
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startRedisServer(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await eventually(async () => {
    try {
      const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'ping']);
      return stdout.trim() === 'PONG';
    } catch {
      return false;
    }
  }, `redis-server on port ${port}`);
  return child;
}

async function stopRedisServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

describeWithRedis('a Redis outage mid-run (a redis-server of the test\'s own)', () => {
  let port: number;
  let redis: ChildProcess | null = null;
  let a: TestStack;
  let b: TestStack;
  beforeAll(async () => {
    port = await freePort();
    redis = await startRedisServer(port);
    // A limit high enough not to refuse anything, so every start also counts through Redis (and its fallback).
    [a, b] = await twoInstances('outage:', { REDIS_URL: `redis://127.0.0.1:${port}`, RATE_LIMIT_MAX: '100' });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    if (redis) await stopRedisServer(redis);
  });

  it('keeps verifications working per instance while Redis is down, and shares again once it is back', async () => {
    const token = await a.token('outage-user');
    const before = handoffOf(await a.startVerification({ token, idempotencyKey: 'before' }));
    expect(handoffOf(await b.startVerification({ token, idempotencyKey: 'before' })).sessionId).toBe(before.sessionId);

    await stopRedisServer(redis!);
    redis = null;
    // Verifications keep working: new sessions, and replays within one instance.
    const during = handoffOf(await a.startVerification({ token, idempotencyKey: 'during' }));
    expect(during.reused).toBe(false);
    expect(handoffOf(await a.startVerification({ token, idempotencyKey: 'during' }))).toEqual({ ...during, reused: true });
    expect(handoffOf(await b.startVerification({ token })).reused).toBe(false);
    expect(a.gateway.sharedState()).toEqual({ configured: 'redis', active: 'memory', reason: expect.any(String), reasonCode: expect.any(String) });
    expect(b.gateway.sharedState()).toEqual({ configured: 'redis', active: 'memory', reason: expect.any(String), reasonCode: expect.any(String) });
    // Reported, never failing readiness, with the reason: the failed command's at first, then the
    // client's own error once it has tried to reconnect; in /readyz (public) its code alone.
    const refused = `connect ECONNREFUSED 127.0.0.1:${port}`;
    await eventually(() => a.gateway.sharedState().reason === refused, 'the refused reconnection as the reason');
    expect(await readyz(a)).toEqual({ status: 200, redis: { state: 'down', reason: 'ECONNREFUSED' } });
    expect(await redisAvailable(a)).toBe('0');
    // Said once, however many requests ran meanwhile; the new reason once too, however often the
    // client retried into it (every 100 ms more, so at least twice more in this second).
    handoffOf(await a.startVerification({ token }));
    await sleep(1000);
    expect(logCount(a, UNREACHABLE)).toBe(1);
    expect(reasonsLogged(a, STILL_UNREACHABLE).filter((reason) => reason === refused)).toHaveLength(1);
    expect(a.logs.join('')).not.toContain(`redis://127.0.0.1:${port}`);

    redis = await startRedisServer(port);
    await eventually(() => a.gateway.sharedState().active === 'redis' && b.gateway.sharedState().active === 'redis', 'both instances to use Redis again');
    expect(logCount(a, 'Redis is reachable again: idempotency, single flight and rate limits hold across instances again')).toBe(1);
    expect(await readyz(a)).toEqual({ status: 200, redis: { state: 'up' } });
    expect(await redisAvailable(a)).toBe('1');

    const after = handoffOf(await b.startVerification({ token, idempotencyKey: 'after' }));
    expect(handoffOf(await a.startVerification({ token, idempotencyKey: 'after' }))).toEqual({ ...after, reused: true });
    // A key started during the outage still replays on the instance that started it.
    expect(handoffOf(await a.startVerification({ token, idempotencyKey: 'during' }))).toEqual({ ...during, reused: true });
  });
});

describeWithRedis('a Redis that refuses the gateway\'s credentials', () => {
  it('says why (WRONGPASS) in the start-up warning and in /readyz, once, never with the password', async () => {
    const password = 'not-the-password-5b1e9c';
    const url = new URL(REDIS_URL ?? '');
    // Redis 7 refuses an unknown user with WRONGPASS whether or not it requires a password itself,
    // so the shared Redis serves here unchanged.
    url.username = 'no-such-user';
    url.password = password;
    const stack = await startStack({ REDIS_URL: url.href, REDIS_KEY_PREFIX: `idv-gateway-test:${randomUUID()}:` });
    try {
      const wrongpass = 'WRONGPASS invalid username-password pair or user is disabled.';
      expect(reasonsLogged(stack, UNREACHABLE)).toEqual([wrongpass]);
      expect(await readyz(stack)).toEqual({ status: 200, redis: { state: 'down', reason: 'WRONGPASS' } });
      expect(stack.gateway.sharedState()).toEqual({ configured: 'redis', active: 'memory', reason: wrongpass, reasonCode: 'WRONGPASS' });
      // The client keeps retrying (at most 2 s apart) into the same refusal: no further line.
      await sleep(2100);
      expect(reasonsLogged(stack, UNREACHABLE)).toEqual([wrongpass]);
      expect(reasonsLogged(stack, STILL_UNREACHABLE)).toEqual([]);
      expect(stack.logs.join('')).not.toContain(password);
      expect(JSON.stringify(await readyz(stack))).not.toContain(password);
    } finally {
      await stack.close();
    }
  });
});

describe('what a Redis error may say in a log line or /readyz', () => {
  it('is its code and message (in /readyz its code alone), never the command it carries, and never the password', () => {
    const refusal = Object.assign(new Error('WRONGPASS invalid username-password pair or user is disabled.'), {
      command: { name: 'hello', args: ['3', 'AUTH', 'gateway', 's3cret-pass'] },
    });
    expect(describeRedisError(refusal, 's3cret-pass')).toEqual({ text: 'WRONGPASS invalid username-password pair or user is disabled.', code: 'WRONGPASS' });
    const tls = Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(describeRedisError(tls, undefined)).toEqual({ text: 'DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate', code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:6379'), { code: 'ECONNREFUSED' });
    expect(describeRedisError(refused, 's3cret-pass')).toEqual({ text: 'connect ECONNREFUSED 10.0.0.5:6379', code: 'ECONNREFUSED' });
    expect(describeRedisError(new Error('Connection is closed.'), undefined)).toEqual({ text: 'Connection is closed.', code: 'ERROR' });
    // Should a message ever repeat a password, it is masked; a short one is not (it would garble
    // the message and show the password where it matched).
    expect(describeRedisError(new Error('ERR bad value s3cret-pass'), 's3cret-pass').text).toBe('ERR bad value ***');
    expect(describeRedisError(refused, '6379').text).toBe('connect ECONNREFUSED 10.0.0.5:6379');
  });
});
