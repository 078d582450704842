import { ConfigError, parseConfig, parseWorkflows } from '../src/config.js';

const SECRET = 'a-jwt-secret-of-at-least-thirty-two-bytes';
const REAL = {
  IDV_BASE_URL: 'https://idv.example.com/',
  IDV_API_KEY: 'key-123',
  IDV_WORKFLOWS: 'kyc=68a72388660070d96275a8c2, age = 7c1e-not-a-uuid',
  AUTH_JWT_SECRET: SECRET,
};

function configError(env: Record<string, string>): string {
  try {
    parseConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfig', () => {
  it('needs nothing in development: emulator and a generated dev secret', () => {
    const config = parseConfig({});
    expect(config).toMatchObject({
      production: false,
      port: 4000,
      host: null,
      logLevel: 'info',
      idv: { baseUrl: null, publicUrl: null, apiKey: null, workflows: null, tokenTtlSeconds: 3600, timeoutMs: 5000, flow: 'ephemeral' },
      auth: { key: { kind: 'dev' }, issuer: null, audience: null, userClaim: 'sub' },
    });
  });

  it('reads a real platform configuration', () => {
    const config = parseConfig({
      ...REAL,
      NODE_ENV: 'production',
      PORT: '8080',
      IDV_PUBLIC_URL: 'https://verify.example.com',
      IDV_API_KEY_SCHEME: 'ApiKey',
      IDV_DEFAULT_WORKFLOW: 'age',
      IDV_TOKEN_TTL_SECONDS: '86400',
      IDV_TIMEOUT_MS: '2500',
      AUTH_ISSUER: 'https://auth.example.com/',
      AUTH_AUDIENCE: 'idv-gateway',
      AUTH_USER_CLAIM: 'uid',
      AUTH_CLOCK_TOLERANCE_SECONDS: '30',
      LOG_LEVEL: 'WARN',
      LOG_USER_IDS: 'true',
      HTTP_BODY_LIMIT_BYTES: '16384',
      CORS_ORIGINS: 'https://app.example.com, http://localhost:5173/',
      GRAPHQL_MAX_DEPTH: '5',
      GRAPHQL_MAX_ALIASES: '2',
      GRAPHQL_MAX_TOKENS: '300',
      GRAPHQL_MAX_DIRECTIVES: '3',
      GRAPHQL_MAX_COST: '200',
    });
    expect(config.logUserIds).toBe(true);
    expect(config.http).toEqual({ bodyLimitBytes: 16384, corsOrigins: ['https://app.example.com', 'http://localhost:5173'], listenBacklog: 4096, maxAcceptWaitMs: 2000, requestTimeoutMs: 10000 });
    expect(config.limits).toEqual({ maxDepth: 5, maxAliases: 2, maxTokens: 300, maxDirectives: 3, maxCost: 200 });
    expect(config.production).toBe(true);
    expect(config.port).toBe(8080);
    expect(config.logLevel).toBe('warn');
    expect(config.idv.baseUrl).toBe('https://idv.example.com');
    expect(config.idv.publicUrl).toBe('https://verify.example.com');
    expect(config.idv.apiKeyScheme).toBe('ApiKey');
    expect(config.idv.tokenTtlSeconds).toBe(86400);
    expect(config.idv.timeoutMs).toBe(2500);
    expect([...(config.idv.workflows?.ids ?? [])]).toEqual([
      ['kyc', '68a72388660070d96275a8c2'],
      ['age', '7c1e-not-a-uuid'],
    ]);
    expect(config.idv.workflows?.defaultName).toBe('age');
    expect(config.auth).toEqual({
      key: { kind: 'secret', secret: SECRET },
      issuer: 'https://auth.example.com/',
      audience: 'idv-gateway',
      userClaim: 'uid',
      clockToleranceSeconds: 30,
    });
  });

  it('opens CORS to any origin in development only, and logs user ids hashed by default', () => {
    expect(parseConfig({}).http).toEqual({ bodyLimitBytes: 65536, corsOrigins: '*', listenBacklog: 4096, maxAcceptWaitMs: 2000, requestTimeoutMs: 10000 });
    expect(parseConfig({ ...REAL, NODE_ENV: 'production' }).http.corsOrigins).toEqual([]);
    expect(parseConfig({ ...REAL, NODE_ENV: 'production', CORS_ORIGINS: '*' }).http.corsOrigins).toBe('*');
    expect(parseConfig({}).logUserIds).toBe(false);
    expect(parseConfig({}).limits).toEqual({ maxDepth: 8, maxAliases: 5, maxTokens: 1000, maxDirectives: 10, maxCost: 1000 });
    expect(parseConfig({}).auth.clockToleranceSeconds).toBe(5);
  });

  it.each([
    ['ephemeral', 'ephemeral'],
    ['deeplink', 'deeplink'],
    [' Auto ', 'auto'],
    ['', 'ephemeral'],
  ])('reads IDV_FLOW=%j as %s', (value, flow) => {
    expect(parseConfig({ ...REAL, IDV_FLOW: value }).idv.flow).toBe(flow);
  });

  it('serves /metrics on the main port and waits 10 s for requests in flight at shutdown, unless told otherwise', () => {
    expect(parseConfig({}).operations).toEqual({ metricsPort: null, shutdownGraceMs: 10_000, shutdownDelayMs: 0 });
    expect(parseConfig({}).idv).toMatchObject({ healthTimeoutMs: 1000, healthCacheMs: 10_000 });
    const config = parseConfig({ METRICS_PORT: '9464', SHUTDOWN_GRACE_MS: '25000', SHUTDOWN_DELAY_MS: '5000', IDV_HEALTH_TIMEOUT_MS: '500', IDV_HEALTH_CACHE_MS: '0' });
    expect(config.operations).toEqual({ metricsPort: 9464, shutdownGraceMs: 25_000, shutdownDelayMs: 5000 });
    expect(config.idv).toMatchObject({ healthTimeoutMs: 500, healthCacheMs: 0 });
    // Both 0: two free ports, picked apart by the system.
    expect(parseConfig({ PORT: '0', METRICS_PORT: '0' }).operations.metricsPort).toBe(0);
  });

  it('keeps a base URL path prefix and treats blank values as unset', () => {
    const config = parseConfig({ ...REAL, IDV_BASE_URL: 'http://idv.internal:8080/platform/', IDV_PUBLIC_URL: '  ', LOG_LEVEL: '' });
    expect(config.idv.baseUrl).toBe('http://idv.internal:8080/platform');
    expect(config.idv.publicUrl).toBeNull();
    expect(config.logLevel).toBe('info');
  });

  it.each([
    [{ PORT: 'eighty' }, /^PORT must be a whole number from 0 to 65535 \(got "eighty"\)$/],
    [{ PORT: '70000' }, /^PORT must be a whole number/],
    [{ IDV_TOKEN_TTL_SECONDS: '59' }, /^IDV_TOKEN_TTL_SECONDS must be a whole number from 60 to 86400 \(got "59"\)$/],
    [{ IDV_TOKEN_TTL_SECONDS: '86401' }, /^IDV_TOKEN_TTL_SECONDS must be a whole number from 60 to 86400/],
    [{ IDV_TOKEN_TTL_SECONDS: '3600.5' }, /^IDV_TOKEN_TTL_SECONDS must be a whole number/],
    [{ IDV_TIMEOUT_MS: '-1' }, /^IDV_TIMEOUT_MS must be a whole number/],
    [{ IDV_FLOW: 'one-call' }, /^IDV_FLOW must be one of ephemeral, deeplink, auto \(got "one-call"\)$/],
    [{ LOG_LEVEL: 'verbose' }, /^LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent/],
    [{ IDV_BASE_URL: 'idv.example.com' }, /^IDV_BASE_URL must be an absolute http\(s\) URL/],
    [{ IDV_BASE_URL: 'ftp://idv.example.com' }, /^IDV_BASE_URL must use http or https/],
    [{ IDV_BASE_URL: 'https://user:pw@idv.example.com' }, /^IDV_BASE_URL must not contain credentials/],
    // A URL that does not parse is quoted without what stands before its '@'.
    [{ IDV_BASE_URL: 'https://svc:Pa55word@idv.internal:99999' }, /^IDV_BASE_URL must be an absolute http\(s\) URL such as https:\/\/idv\.example\.com \(got "https:\/\/…@idv\.internal:99999"\)$/],
    [{ IDV_PUBLIC_URL: 'https:/u:se\ncret@phones example', IDV_BASE_URL: 'https://idv.example.com' }, /^IDV_PUBLIC_URL must be an absolute http\(s\) URL such as https:\/\/idv\.example\.com \(got "https:\/…@phones example"\)$/],
    [{ AUTH_JWKS_URL: 'https://svc:pa/ss#w@rd@auth.internal:99999/jwks' }, /^AUTH_JWKS_URL must be an absolute http\(s\) URL such as https:\/\/idv\.example\.com \(got "https:\/\/…@auth\.internal:99999\/jwks"\)$/],
    // A near miss of production would run development mode, with a dev token signed by AUTH_JWT_SECRET.
    [{ ...REAL, NODE_ENV: 'Production' }, /^NODE_ENV must be production, development or test, or unset for development \(got "Production"\)$/],
    [{ NODE_ENV: 'staging' }, /^NODE_ENV must be production, development or test/],
    [{ IDV_BASE_URL: 'https://idv.example.com/?a=1' }, /^IDV_BASE_URL must not have a query string/],
    [{ IDV_PUBLIC_URL: 'https://phones.example.com' }, /^IDV_PUBLIC_URL is set but IDV_BASE_URL is not/],
    [{ IDV_BASE_URL: 'https://idv.example.com', IDV_WORKFLOWS: 'kyc=1' }, /^IDV_API_KEY is required when IDV_BASE_URL is set$/],
    [{ IDV_BASE_URL: 'https://idv.example.com', IDV_API_KEY: 'k' }, /^IDV_WORKFLOWS is required when IDV_BASE_URL is set/],
    [{ ...REAL, IDV_API_KEY: 'two words' }, /^IDV_API_KEY must be printable ASCII without spaces/],
    [{ IDV_API_KEY_SCHEME: 'Api Key' }, /^IDV_API_KEY_SCHEME must be a single word/],
    [{ IDV_DEFAULT_WORKFLOW: 'kyc' }, /^IDV_DEFAULT_WORKFLOW is set but IDV_WORKFLOWS is not$/],
    [{ ...REAL, IDV_DEFAULT_WORKFLOW: 'aml' }, /^IDV_DEFAULT_WORKFLOW "aml" is not one of IDV_WORKFLOWS \(kyc, age\)$/],
    [{ AUTH_JWT_SECRET: SECRET, AUTH_JWKS_URL: 'https://auth.example.com/jwks' }, /^set either AUTH_JWT_SECRET \(HS256\) or AUTH_JWKS_URL/],
    [{ AUTH_JWT_SECRET: 'short' }, /^AUTH_JWT_SECRET must be at least 32 bytes long for HS256$/],
    [{ AUTH_JWKS_URL: 'not a url' }, /^AUTH_JWKS_URL must be an absolute http\(s\) URL/],
    [{ AUTH_USER_CLAIM: 'user id' }, /^AUTH_USER_CLAIM must be a claim name without spaces/],
    [{ AUTH_CLOCK_TOLERANCE_SECONDS: '301' }, /^AUTH_CLOCK_TOLERANCE_SECONDS must be a whole number from 0 to 300/],
    [{ LOG_USER_IDS: 'yes' }, /^LOG_USER_IDS must be true or false \(got "yes"\)$/],
    [{ HTTP_BODY_LIMIT_BYTES: '100' }, /^HTTP_BODY_LIMIT_BYTES must be a whole number from 1024 to 10485760/],
    [{ CORS_ORIGINS: 'app.example.com' }, /^CORS_ORIGINS must list origins such as https:\/\/app.example.com/],
    [{ CORS_ORIGINS: 'https://app.example.com/path' }, /^CORS_ORIGINS must list origins/],
    [{ GRAPHQL_MAX_DEPTH: '1' }, /^GRAPHQL_MAX_DEPTH must be a whole number from 2 to 100/],
    [{ GRAPHQL_MAX_COST: 'lots' }, /^GRAPHQL_MAX_COST must be a whole number/],
    [{ METRICS_PORT: 'x' }, /^METRICS_PORT must be a whole number from 0 to 65535 \(got "x"\)$/],
    [{ PORT: '4000', METRICS_PORT: '4000' }, /^METRICS_PORT must differ from PORT \(both are 4000\); unset it to serve \/metrics on the main port$/],
    [{ METRICS_PORT: '4000' }, /^METRICS_PORT must differ from PORT/],
    [{ SHUTDOWN_GRACE_MS: '-5' }, /^SHUTDOWN_GRACE_MS must be a whole number from 0 to 600000 \(got "-5"\)$/],
    [{ SHUTDOWN_DELAY_MS: '1.5' }, /^SHUTDOWN_DELAY_MS must be a whole number from 0 to 600000 \(got "1.5"\)$/],
    [{ IDV_HEALTH_TIMEOUT_MS: '50' }, /^IDV_HEALTH_TIMEOUT_MS must be a whole number from 100 to 30000/],
    [{ IDV_HEALTH_CACHE_MS: 'soon' }, /^IDV_HEALTH_CACHE_MS must be a whole number from 0 to 600000/],
  ])('rejects %j with a message naming the variable', (env, message) => {
    expect(configError(env)).toMatch(message);
  });

  it('never echoes a secret value in an error', () => {
    const secretish = 'short-secret-value';
    expect(configError({ AUTH_JWT_SECRET: secretish })).not.toContain(secretish);
    const key = 'api key with spaces';
    expect(configError({ ...REAL, IDV_API_KEY: key })).not.toContain(key);
  });

  describe('duplicate protection (issue 5)', () => {
    it('limits 5 new sessions per caller per 10 minutes, in process, by default', () => {
      const config = parseConfig({});
      expect(config.rateLimit).toEqual({ max: 5, windowSeconds: 600 });
      expect(config.state).toEqual({ redisUrl: null, keyPrefix: 'idv-gateway:' });
    });

    it('reads the limit, REDIS_URL and the key prefix; RATE_LIMIT_MAX=0 turns the limit off', () => {
      const config = parseConfig({ RATE_LIMIT_MAX: '20', RATE_LIMIT_WINDOW_SECONDS: '60', REDIS_URL: 'rediss://:s3cret@redis.internal:6380/2', REDIS_KEY_PREFIX: 'prod:idv:' });
      expect(config.rateLimit).toEqual({ max: 20, windowSeconds: 60 });
      expect(config.state).toEqual({ redisUrl: 'rediss://:s3cret@redis.internal:6380/2', keyPrefix: 'prod:idv:' });
      expect(parseConfig({ RATE_LIMIT_MAX: '0' }).rateLimit).toBeNull();
      expect(parseConfig({ REDIS_KEY_PREFIX: '' }).state.keyPrefix).toBe('');
    });

    it.each([
      [{ RATE_LIMIT_MAX: '-1' }, /^RATE_LIMIT_MAX must be a whole number from 0 to 1000000 \(got "-1"\)$/],
      [{ RATE_LIMIT_MAX: 'five' }, /^RATE_LIMIT_MAX must be a whole number/],
      [{ RATE_LIMIT_WINDOW_SECONDS: '0' }, /^RATE_LIMIT_WINDOW_SECONDS must be a whole number from 1 to 86400/],
      [{ REDIS_URL: 'http://redis.internal:6379' }, /^REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/],
      [{ REDIS_URL: 'not a url' }, /^REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/],
      [{ REDIS_KEY_PREFIX: 'with space' }, /^REDIS_KEY_PREFIX must be at most 64 visible ASCII characters/],
    ])('rejects %j', (env, message) => {
      expect(configError(env)).toMatch(message);
    });

    it('never echoes REDIS_URL, which may hold a password', () => {
      expect(configError({ REDIS_URL: 'http://:hunter2-password@redis.internal' })).not.toContain('hunter2');
    });
  });

  describe('in production', () => {
    it.each([
      [{ ...REAL, IDV_BASE_URL: '' }, /^IDV_BASE_URL is required when NODE_ENV=production/],
      [{ ...REAL, AUTH_JWT_SECRET: '' }, /^AUTH_JWT_SECRET or AUTH_JWKS_URL is required when NODE_ENV=production$/],
      [{ ...REAL, AUTH_JWT_SECRET: '', AUTH_JWKS_URL: 'http://auth.example.com/jwks' }, /^AUTH_JWKS_URL must use https when NODE_ENV=production$/],
      [{ ...REAL, IDV_API_KEY: '' }, /^IDV_API_KEY is required/],
      [{ ...REAL, IDV_WORKFLOWS: '' }, /^IDV_WORKFLOWS is required/],
    ])('requires the IDV and auth settings: %j', (env, message) => {
      expect(configError({ ...env, NODE_ENV: 'production' })).toMatch(message);
    });

    it('accepts a JWKS URL over https', () => {
      const config = parseConfig({ ...REAL, AUTH_JWT_SECRET: '', AUTH_JWKS_URL: 'https://auth.example.com/.well-known/jwks.json', NODE_ENV: 'production' });
      expect(config.auth.key).toEqual({ kind: 'jwks', url: 'https://auth.example.com/.well-known/jwks.json' });
    });
  });
});

describe('parseWorkflows', () => {
  it('keeps order, takes the first as default, and tolerates spaces and empty entries', () => {
    const catalog = parseWorkflows(' kyc = a1 ,, age=b-2 ,', null);
    expect([...catalog.ids]).toEqual([
      ['kyc', 'a1'],
      ['age', 'b-2'],
    ]);
    expect(catalog.defaultName).toBe('kyc');
  });

  // The contract: workflow ids are opaque, never checked for shape. Only the list's comma is out.
  it('takes any workflow id as it is written, but for the spaces around it', () => {
    const long = 'x'.repeat(300);
    const catalog = parseWorkflows(`a=abc=, b = wf one , c=${long}, d=ä/ö?&#`, null);
    expect([...catalog.ids.values()]).toEqual(['abc=', 'wf one', long, 'ä/ö?&#']);
  });

  it.each([
    ['', /must list at least one workflow/],
    ['kyc', /entry "kyc" needs a workflow id/],
    ['kyc=', /entry "kyc" needs a workflow id/],
    ['=abc', /invalid name ""/],
    ['k y c=abc', /invalid name "k y c"/],
    ['kyc=a,kyc=b', /names "kyc" twice/],
  ])('rejects %j', (list, message) => {
    expect(() => parseWorkflows(list, null)).toThrow(message);
  });
});
