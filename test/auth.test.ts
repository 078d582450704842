import { createHmac } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT, UnsecuredJWT } from 'jose';
import { KEY_SET_TIMINGS, type KeySetTimings } from '../src/key-set.js';
import { startJwksServer, type JwksServer } from './support/jwks.js';
import { parsePrometheusText } from './support/prometheus.js';
import { rawRequest } from './support/raw-http.js';
import { START_VERIFICATION, startStack, TEST_JWT_SECRET, type GraphQLResponse, type TestStack } from './support/stack.js';

const secret = new TextEncoder().encode(TEST_JWT_SECRET);

function sign(claims: Record<string, unknown>, configure: (jwt: SignJWT) => SignJWT = (jwt) => jwt.setExpirationTime('5m')): Promise<string> {
  return configure(new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt()).sign(secret);
}

/** Signed without jose, which refuses to sign some of what a verifier must refuse. */
function signByHand(head: Record<string, unknown>, claims: Record<string, unknown> | Buffer): string {
  const payload = Buffer.isBuffer(claims) ? claims : Buffer.from(JSON.stringify(claims));
  const input = `${Buffer.from(JSON.stringify(head)).toString('base64url')}.${payload.toString('base64url')}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function expectUnauthenticated(response: GraphQLResponse, stack: TestStack): void {
  expect(response.status).toBe(401);
  expect(response.headers.get('www-authenticate')).toBe('Bearer');
  expect(response.body.data).toBeNull();
  expect(response.body.errors).toHaveLength(1);
  expect(response.body.errors[0].extensions).toEqual({ code: 'UNAUTHENTICATED', retryable: false });
  expect(stack.emulator.requests).toEqual([]);
}

describe('caller authentication with a shared secret (HS256)', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.close());
  beforeEach(() => stack.emulator.resetRecords());

  const header = (value: string) => ({ token: null, headers: { authorization: value } });

  it.each<[string, () => Promise<{ token: null; headers?: Record<string, string> }>]>([
    ['no Authorization header', async () => ({ token: null })],
    ['an empty Authorization header', async () => header('')],
    ['a Basic credential', async () => header('Basic dXNlcjpwYXNz')],
    ['"Bearer" without a token', async () => header('Bearer ')],
    ['two tokens', async () => header(`Bearer ${await sign({ sub: 'u' })} ${await sign({ sub: 'u' })}`)],
    ['a token that is not a JWT', async () => header('Bearer not-a-jwt')],
    ['an unsigned token (alg: none)', async () => header(`Bearer ${new UnsecuredJWT({ sub: 'u' }).setExpirationTime('5m').encode()}`)],
    ['a token signed with another secret', async () => header(`Bearer ${await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode('another-secret-that-is-long-enough-to-use'))}`)],
    ['a token with a tampered payload', async () => {
      const [head, , signature] = (await sign({ sub: 'u' })).split('.');
      const forged = Buffer.from(JSON.stringify({ sub: 'admin', exp: Math.floor(Date.now() / 1000) + 300 })).toString('base64url');
      return header(`Bearer ${head}.${forged}.${signature}`);
    }],
    ['an expired token', async () => header(`Bearer ${await sign({ sub: 'u' }, (jwt) => jwt.setExpirationTime(Math.floor(Date.now() / 1000) - 60))}`)],
    ['a token without exp', async () => header(`Bearer ${await sign({ sub: 'u' }, (jwt) => jwt)}`)],
    ['a token without a subject', async () => header(`Bearer ${await sign({ name: 'u' })}`)],
    ['a token with an empty subject', async () => header(`Bearer ${await sign({ sub: '' })}`)],
    ['a token whose subject is not a string', async () => header(`Bearer ${await sign({ sub: 12345 })}`)],
    ['a token not yet valid', async () => header(`Bearer ${await sign({ sub: 'u' }, (jwt) => jwt.setExpirationTime('10m').setNotBefore('5m'))}`)],
    ['a 10 KB token', async () => header(`Bearer ${'a'.repeat(10_000)}`)],
    ['a token whose subject is invalid UTF-8', async () => header(`Bearer ${signByHand({ alg: 'HS256' }, Buffer.concat([Buffer.from(`{"exp":${Math.floor(Date.now() / 1000) + 300},"sub":"a`), Buffer.from([0xff]), Buffer.from('"}')]))}`)],
    ['a token whose subject is a lone surrogate', async () => header(`Bearer ${signByHand({ alg: 'HS256' }, Buffer.from(`{"exp":${Math.floor(Date.now() / 1000) + 300},"sub":"a\\ud800"}`))}`)],
    ['a token whose subject has a C1 control character', async () => header(`Bearer ${await sign({ sub: 'a\u0085b' })}`)],
    // Ids that could pass for another where the platform's reviewers read them (a claim users choose).
    ['a token whose subject has a zero-width space', async () => header(`Bearer ${await sign({ sub: 'alice\u200b' })}`)],
    ['a token whose subject has a right-to-left override', async () => header(`Bearer ${await sign({ sub: 'user\u202e321' })}`)],
    ['a token whose subject has a byte order mark', async () => header(`Bearer ${await sign({ sub: '\ufeffalice' })}`)],
    // Not format characters, yet rendered as nothing (Default_Ignorable_Code_Point).
    ['a token whose subject has a Hangul filler', async () => header(`Bearer ${await sign({ sub: 'alice\u3164' })}`)],
    ['a token whose subject has a variation selector', async () => header(`Bearer ${await sign({ sub: 'alice\ufe0f' })}`)],
    ['a token whose subject has a combining grapheme joiner', async () => header(`Bearer ${await sign({ sub: 'ali\u034fce' })}`)],
    ['a token whose subject has a line separator', async () => header(`Bearer ${await sign({ sub: 'a\u2028b' })}`)],
    ['a token whose subject has a noncharacter', async () => header(`Bearer ${await sign({ sub: 'a\uffffb' })}`)],
    ['a token whose subject has only spaces', async () => header(`Bearer ${await sign({ sub: '   ' })}`)],
    ['a token whose subject has a space at its end', async () => header(`Bearer ${await sign({ sub: 'alice ' })}`)],
    ['a token whose subject has a no-break space at its start', async () => header(`Bearer ${await sign({ sub: '\u00a0alice' })}`)],
    ['a token signed HS512 with the right secret (the algorithm is pinned)', async () => header(`Bearer ${await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'HS512' }).setExpirationTime('5m').sign(secret)}`)],
    ['a token with a critical header extension the gateway does not know', async () => header(`Bearer ${signByHand({ alg: 'HS256', crit: ['x-policy'], 'x-policy': 1 }, { sub: 'u', exp: Math.floor(Date.now() / 1000) + 300 })}`)],
    ['a token whose exp is not a number', async () => header(`Bearer ${await sign({ sub: 'u', exp: String(Math.floor(Date.now() / 1000) + 300) }, (jwt) => jwt)}`)],
    ['a token expired for longer than the clock tolerance', async () => header(`Bearer ${await sign({ sub: 'u' }, (jwt) => jwt.setExpirationTime(Math.floor(Date.now() / 1000) - 10))}`)],
    // JSON reads 1e400 as Infinity: an exp that would never come.
    ['a token whose exp is 1e400', async () => header(`Bearer ${signByHand({ alg: 'HS256' }, Buffer.from('{"sub":"u","exp":1e400}'))}`)],
    ['a token whose nbf is -1e400', async () => header(`Bearer ${signByHand({ alg: 'HS256' }, Buffer.from(`{"sub":"u","exp":${Math.floor(Date.now() / 1000) + 300},"nbf":-1e400}`))}`)],
    ['a token whose iat is not a number', async () => header(`Bearer ${signByHand({ alg: 'HS256' }, { sub: 'u', exp: Math.floor(Date.now() / 1000) + 300, iat: String(Math.floor(Date.now() / 1000)) })}`)],
    ['a token whose iat is 1e400', async () => header(`Bearer ${signByHand({ alg: 'HS256' }, Buffer.from(`{"sub":"u","exp":${Math.floor(Date.now() / 1000) + 300},"iat":1e400}`))}`)],
    ['a token issued later than now and the clock tolerance', async () => header(`Bearer ${await sign({ sub: 'u' }, (jwt) => jwt.setIssuedAt(Math.floor(Date.now() / 1000) + 60).setExpirationTime('5m'))}`)],
  ])('refuses %s with 401 UNAUTHENTICATED and no upstream call', async (_name, request) => {
    expectUnauthenticated(await stack.startVerification(await request()), stack);
  });

  it('says why in words a client developer can act on', async () => {
    const missing = await stack.startVerification({ token: null });
    expect(missing.body.errors[0].message).toBe('Sign-in required: send "Authorization: Bearer <token>".');
    const expired = await stack.startVerification({ token: await sign({ sub: 'u' }, (jwt) => jwt.setExpirationTime(Math.floor(Date.now() / 1000) - 60)) });
    expect(expired.body.errors[0].message).toBe('The bearer token has expired. Refresh it and retry.');
  });

  it('accepts a valid token, with the scheme in any case', async () => {
    const response = await stack.startVerification({ token: null, headers: { authorization: `bearer ${await sign({ sub: 'u-1' })}` } });
    expect(response.status).toBe(200);
    expect(response.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
  });

  it('refuses bad time claims as any other invalid token', async () => {
    const response = await stack.startVerification({ token: signByHand({ alg: 'HS256' }, { sub: 'u', exp: Math.floor(Date.now() / 1000) + 300, iat: 'yesterday' }) });
    expect(response.body.errors[0].message).toBe('The bearer token is not valid for this gateway. Sign in again.');
  });

  it('accepts a token issued within the clock tolerance (5 s by default) of now', async () => {
    const token = await sign({ sub: 'u' }, (jwt) => jwt.setIssuedAt(Math.floor(Date.now() / 1000) + 2).setExpirationTime('5m'));
    expect((await stack.startVerification({ token })).status).toBe(200);
  });

  it('accepts a token expired within the clock tolerance (5 s by default)', async () => {
    const token = await sign({ sub: 'u' }, (jwt) => jwt.setExpirationTime(Math.floor(Date.now() / 1000) - 2));
    expect((await stack.startVerification({ token })).status).toBe(200);
  });

  // Sent as written: fetch (undici) may join repeated headers into one before they leave.
  it.each<[string, (valid: string) => string[]]>([
    ['a valid token, then another value', (valid) => ['Authorization', valid, 'Authorization', 'Bearer garbage']],
    ['another value, then a valid token', (valid) => ['Authorization', 'Bearer garbage', 'authorization', valid]],
    ['the same valid token twice, names in other cases', (valid) => ['authorization', valid, 'AUTHORIZATION', valid]],
  ])('refuses a request with two Authorization headers (%s) as a malformed one', async (_name, authorizations) => {
    const valid = `Bearer ${await sign({ sub: 'u' })}`;
    const { host } = new URL(stack.url);
    const response = await rawRequest(stack.url, {
      headers: ['Host', host, 'Content-Type', 'application/json', ...authorizations(valid)],
      body: JSON.stringify({ query: START_VERIFICATION }),
    });
    expect(response.status).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Bearer');
    expect(response.body.data).toBeNull();
    expect(response.body.errors).toEqual([
      expect.objectContaining({
        message: 'The Authorization header must be "Bearer <token>" with one JSON Web Token.',
        extensions: { code: 'UNAUTHENTICATED', retryable: false },
      }),
    ]);
    expect(stack.emulator.requests).toEqual([]);
    // The valid header alone is accepted: only the repeat is refused.
    const alone = await rawRequest(stack.url, { headers: ['Host', host, 'Content-Type', 'application/json', 'Authorization', valid], body: JSON.stringify({ query: START_VERIFICATION }) });
    expect(alone.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
  });

  it('keeps serving after a burst of bad tokens', async () => {
    await Promise.all(Array.from({ length: 20 }, () => stack.startVerification({ token: 'garbage' })));
    expect((await stack.startVerification()).status).toBe(200);
  });
});

describe('caller authentication with issuer, audience and a custom user claim', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ AUTH_ISSUER: 'https://auth.example.com/', AUTH_AUDIENCE: 'idv-gateway', AUTH_USER_CLAIM: 'uid' });
  });
  afterAll(() => stack.close());
  beforeEach(() => stack.emulator.resetRecords());

  const good = { iss: 'https://auth.example.com/', aud: 'idv-gateway', uid: 'member-9', sub: 'ignored' };

  it('binds the session to the configured claim', async () => {
    const response = await stack.startVerification({ token: await sign(good) });
    const sessionId = response.body.data.startVerification.sessionId;
    expect(stack.emulator.sessions.get(sessionId)?.metadata).toEqual({ externalUserId: 'member-9' });
  });

  it('requires the issuer in the token itself, whatever Object.prototype carries', async () => {
    // As if some other code had polluted the prototype: a claim must still be the token's own.
    Object.defineProperty(Object.prototype, 'iss', { value: good.iss, configurable: true, enumerable: false });
    try {
      expectUnauthenticated(await stack.startVerification({ token: await sign({ ...good, iss: undefined }) }), stack);
    } finally {
      delete (Object.prototype as { iss?: unknown }).iss;
    }
  });

  it('accepts an audience list that names the gateway', async () => {
    const response = await stack.startVerification({ token: await sign({ ...good, aud: ['another-api', 'idv-gateway'] }) });
    expect(response.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
  });

  it.each([
    ['a wrong issuer', { ...good, iss: 'https://evil.example.com/' }],
    ['no issuer', { ...good, iss: undefined }],
    ['a wrong audience', { ...good, aud: 'another-api' }],
    ['no audience', { ...good, aud: undefined }],
    ['an audience list without the gateway', { ...good, aud: ['another-api', 'a-third-api'] }],
    ['an issuer that only starts like the configured one', { ...good, iss: 'https://auth.example.com/evil' }],
    ['no user claim (only sub)', { ...good, uid: undefined }],
  ])('refuses %s', async (_name, claims) => {
    expectUnauthenticated(await stack.startVerification({ token: await sign(claims) }), stack);
  });
});

// The key set fetched again as soon as a fetch fails, so that a test sees its recovery at once.
const RETRY_AT_ONCE = { keySetTimings: { ...KEY_SET_TIMINGS, retryAfterFailureMs: 0 } };

describe('caller authentication with a JWKS (RS256/ES256)', () => {
  let jwks: JwksServer;
  let stack: TestStack;
  beforeAll(async () => {
    jwks = await startJwksServer();
    stack = await startStack({ AUTH_JWT_SECRET: '', AUTH_JWKS_URL: jwks.url });
  });
  afterAll(async () => {
    await stack.close();
    await jwks.close();
  });
  beforeEach(() => {
    jwks.setMode('up');
    stack.emulator.resetRecords();
  });

  it.each(['RS256', 'ES256'] as const)('accepts a %s token from the key set', async (alg) => {
    const response = await stack.startVerification({ token: await jwks.sign(alg, { sub: `jwks-${alg}` }) });
    const sessionId = response.body.data.startVerification.sessionId;
    expect(stack.emulator.sessions.get(sessionId)?.metadata).toEqual({ externalUserId: `jwks-${alg}` });
  });

  it('refuses a token whose exp is 1e400 (Infinity) or whose iat is in the future, which jose alone would accept', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect((await stack.startVerification({ token: await jwks.signText(`{"sub":"u","exp":${now + 300}}`) })).body.data?.startVerification).toBeDefined();
    stack.emulator.resetRecords();
    expectUnauthenticated(await stack.startVerification({ token: await jwks.signText('{"sub":"u","exp":1e400}') }), stack);
    expectUnauthenticated(await stack.startVerification({ token: await jwks.signText(`{"sub":"u","exp":${now + 300},"iat":${now + 60}}`) }), stack);
  });

  it('refuses an HS256 token (no algorithm confusion) and an unknown key id', async () => {
    expectUnauthenticated(await stack.startVerification({ token: await sign({ sub: 'u' }) }), stack);
    expectUnauthenticated(await stack.startVerification({ token: await jwks.sign('RS256', { sub: 'u' }, { kid: 'unknown' }) }), stack);
  });

  it('reports an unreachable key set as retryable AUTH_UNAVAILABLE, not as the caller\'s fault', async () => {
    // A fresh gateway, so the key set is not cached yet.
    const cold = await startStack({ AUTH_JWT_SECRET: '', AUTH_JWKS_URL: jwks.url }, {}, RETRY_AT_ONCE);
    try {
      jwks.setMode('error');
      const response = await cold.startVerification({ token: await jwks.sign('RS256', { sub: 'u' }) });
      expect(response.body.errors[0].extensions).toEqual({ code: 'AUTH_UNAVAILABLE', retryable: true });
      expect(response.status).toBe(200);
      expect(cold.emulator.requests).toEqual([]);
      jwks.setMode('up');
      const recovered = await cold.startVerification({ token: await jwks.sign('ES256', { sub: 'u' }) });
      expect(recovered.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    } finally {
      await cold.close();
    }
  });

  it('accepts a token without a key id while the set holds two keys of its type (a rotation), and only a good one', async () => {
    const rotating = await startJwksServer({ rotation: true });
    const gateway = await startStack({ AUTH_JWT_SECRET: '', AUTH_JWKS_URL: rotating.url });
    try {
      for (const key of [undefined, 'next'] as const) {
        const response = await gateway.startVerification({ token: await rotating.sign('RS256', { sub: `no-kid-${key ?? 'first'}` }, { kid: null, key }) });
        expect(response.body.data?.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
      }
      // Signed by neither key of the set: tried against both, refused as the caller's.
      gateway.emulator.resetRecords();
      expectUnauthenticated(await gateway.startVerification({ token: await jwks.sign('RS256', { sub: 'u' }, { kid: null }) }), gateway);
    } finally {
      await gateway.close();
      await rotating.close();
    }
  });

  it('logs why a token was refused or could not be checked, for the operator, and nothing of the token', async () => {
    const cold = await startStack({ AUTH_JWT_SECRET: '', AUTH_JWKS_URL: jwks.url });
    try {
      jwks.setMode('error');
      const token = await jwks.sign('RS256', { sub: 'u' });
      expect((await cold.startVerification({ token })).body.errors[0].extensions.code).toBe('AUTH_UNAVAILABLE');
      jwks.setMode('up');
      expect((await cold.startVerification({ token: await sign({ sub: 'u' }) })).status).toBe(401);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const lines = cold.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === 'graphql operation');
      expect(lines.map((line) => [line.outcome, line.authFailure])).toEqual([
        ['AUTH_UNAVAILABLE', 'jwks-unavailable: Expected 200 OK from the JSON Web Key Set HTTP response'],
        ['UNAUTHENTICATED', 'ERR_JOSE_ALG_NOT_ALLOWED'],
      ]);
      expect(cold.logs.join('\n')).not.toContain(token.split('.')[2]);
    } finally {
      await cold.close();
    }
  });

  it('counts the token check in the operation\'s logged duration and in its histogram', async () => {
    const cold = await startStack({ AUTH_JWT_SECRET: '', AUTH_JWKS_URL: jwks.url });
    try {
      // The key set's fetch, on the first token, runs in Apollo's context function: before its pipeline starts.
      const delayMs = 500;
      jwks.setMode({ delayMs });
      const response = await cold.startVerification({ token: await jwks.sign('RS256', { sub: 'u' }) });
      expect(response.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const lines = cold.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === 'graphql operation');
      expect(lines).toEqual([expect.objectContaining({ field: 'startVerification', outcome: 'OK' })]);
      expect(lines[0]?.durationMs).toBeGreaterThanOrEqual(delayMs);
      const metrics = parsePrometheusText(await (await fetch(cold.gateway.metricsUrl)).text());
      expect(metrics.value('idv_gateway_start_verification_duration_seconds_count')).toBe(1);
      expect(metrics.value('idv_gateway_start_verification_duration_seconds_sum')).toBeGreaterThanOrEqual(delayMs / 1000);
      expect(metrics.value('idv_gateway_start_verification_duration_seconds_sum')).toBeCloseTo((lines[0]?.durationMs as number) / 1000, 2);
    } finally {
      await cold.close();
    }
  });

  it('does not read a key set over 1 MiB whole: AUTH_UNAVAILABLE, as for one that is not a JWKS', async () => {
    const cold = await startStack({ AUTH_JWT_SECRET: '', AUTH_JWKS_URL: jwks.url }, {}, RETRY_AT_ONCE);
    try {
      // A real key set, padded to 4 MiB: read whole, it would verify the token.
      jwks.setMode({ padded: 4 * 1024 * 1024 });
      const response = await cold.startVerification({ token: await jwks.sign('RS256', { sub: 'u' }) });
      expect(response.body.errors?.[0].extensions).toEqual({ code: 'AUTH_UNAVAILABLE', retryable: true });
      expect(cold.emulator.requests).toEqual([]);
      jwks.setMode('up');
      const recovered = await cold.startVerification({ token: await jwks.sign('RS256', { sub: 'u' }) });
      expect(recovered.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    } finally {
      await cold.close();
    }
  });
});

describe('the key set while the identity provider fails', () => {
  let jwks: JwksServer;
  beforeAll(async () => {
    jwks = await startJwksServer();
  });
  afterAll(() => jwks.close());
  beforeEach(() => jwks.setMode('up'));

  /** A gateway whose key set is fetched once now, and whose timings are `timings` over the defaults. */
  async function gatewayWithKeys(timings: Partial<KeySetTimings>): Promise<TestStack> {
    const stack = await startStack({ AUTH_JWT_SECRET: '', AUTH_JWKS_URL: jwks.url }, {}, { keySetTimings: { ...KEY_SET_TIMINGS, ...timings } });
    expect((await stack.startVerification({ token: await jwks.sign('RS256', { sub: 'before' }) })).body.data?.startVerification).toBeDefined();
    return stack;
  }
  const codeOf = (response: { body: { errors?: { extensions: { code: string } }[] } }) => response.body.errors?.[0]?.extensions.code;

  it('keeps checking tokens with the last key set, fetches again at most once per pause, and logs the outage once', async () => {
    const before = Date.now();
    const stack = await gatewayWithKeys({ maxAgeMs: 50, retryAfterFailureMs: 60_000 });
    try {
      const fetched = jwks.requests;
      jwks.setMode('error');
      await sleep(100);
      for (const user of ['during-1', 'during-2', 'during-3']) {
        const response = await stack.startVerification({ token: await jwks.sign('RS256', { sub: user }) });
        expect(response.body.data?.startVerification).toBeDefined();
      }
      // A key id the last set does not have: perhaps the provider's new key, which cannot be fetched now.
      const unknown = await stack.startVerification({ token: await jwks.sign('RS256', { sub: 'u' }, { kid: 'new-key' }) });
      expect(unknown.body.errors?.[0]?.extensions).toEqual({ code: 'AUTH_UNAVAILABLE', retryable: true });
      expect(jwks.requests - fetched).toBe(1);
      const warnings = stack.logs.filter((line) => line.includes('JWKS fetch failed'));
      expect(warnings).toHaveLength(1);
      const warning = JSON.parse(warnings[0] ?? '{}') as { keySetAgeSeconds?: unknown };
      expect(warning).toMatchObject({ cause: 'Expected 200 OK from the JSON Web Key Set HTTP response', keySetAgeSeconds: expect.any(Number) });
      // The age in whole seconds of the set fetched since `before`: 0 on a quick machine, 1 on a slow one.
      expect(warning.keySetAgeSeconds).toBeGreaterThanOrEqual(0);
      expect(warning.keySetAgeSeconds).toBeLessThanOrEqual(Math.round((Date.now() - before) / 1000));
    } finally {
      await stack.close();
    }
  });

  it('does not make a request wait on the refresh of a key set it already has', async () => {
    // A fetch that waits would take the request past the test's own timeout.
    const stack = await gatewayWithKeys({ maxAgeMs: 50, timeoutMs: 30_000 });
    try {
      jwks.setMode('hang');
      await sleep(100);
      const fetched = jwks.requests;
      const response = await stack.startVerification({ token: await jwks.sign('ES256', { sub: 'not-waiting' }) });
      expect(response.body.data?.startVerification).toBeDefined();
      expect(jwks.requests - fetched).toBe(1);
    } finally {
      await stack.close();
    }
  });

  it('stops using a key set older than maxStaleMs, and recovers once the provider answers', async () => {
    const stack = await gatewayWithKeys({ maxAgeMs: 0, maxStaleMs: 100, retryAfterFailureMs: 0 });
    try {
      jwks.setMode('error');
      await sleep(150);
      expect(codeOf(await stack.startVerification({ token: await jwks.sign('RS256', { sub: 'stale' }) }))).toBe('AUTH_UNAVAILABLE');
      jwks.setMode('up');
      expect((await stack.startVerification({ token: await jwks.sign('RS256', { sub: 'fresh' }) })).body.data?.startVerification).toBeDefined();
      expect(stack.logs.filter((line) => line.includes('JWKS fetched again'))).toHaveLength(1);
    } finally {
      await stack.close();
    }
  });
});
