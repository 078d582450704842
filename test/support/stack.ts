import { SignJWT } from 'jose';
import { parseConfig } from '../../src/config.js';
import { startEmulator, type EmulatorOptions, type IdvEmulator } from '../../src/emulator/index.js';
import { startGateway, type GatewayOptions, type RunningGateway } from '../../src/gateway.js';
import { capturingLogger } from './log-capture.js';

export const TEST_API_KEY = 'test-api-key-7f3a9c2e1b5d4f60';
export const TEST_JWT_SECRET = 'test-jwt-secret-that-is-long-enough-for-hs256';
export const WORKFLOW_IDS = { kyc: '68a72388660070d96275a8c2', age: 'e3b0c442-98fc-1c14-9afb-f4c8996fb924' } as const;

export interface GraphQLResponse {
  readonly status: number;
  readonly headers: Headers;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: any;
  readonly text: string;
}

export interface TestStack {
  readonly url: string;
  readonly gateway: RunningGateway;
  readonly emulator: IdvEmulator;
  /** Every log line the gateway wrote, raw. */
  readonly logs: string[];
  token(userId?: string, options?: { claims?: Record<string, unknown>; expiresIn?: string | number }): Promise<string>;
  post(body: unknown, headers?: Record<string, string>): Promise<GraphQLResponse>;
  startVerification(options?: { token?: string | null; workflow?: string; locale?: string; idempotencyKey?: string; headers?: Record<string, string> }): Promise<GraphQLResponse>;
  close(): Promise<void>;
}

export const START_VERIFICATION = `mutation StartVerification($input: StartVerificationInput) {
  startVerification(input: $input) { sessionId captureUrl mobileUrl expiresAt workflow reused }
}`;

/**
 * A real emulator and a real gateway on free loopback ports, configured through parseConfig
 * exactly as an operator would configure them.
 */
export async function startStack(
  env: Record<string, string> = {},
  emulatorOptions: Partial<EmulatorOptions> = {},
  gatewayOptions: GatewayOptions = {},
  /** An emulator another stack started, shared (and closed by its owner): for several gateway instances. */
  sharedEmulator?: IdvEmulator,
): Promise<TestStack> {
  const emulator =
    sharedEmulator ??
    (await startEmulator({
      apiKey: TEST_API_KEY,
      workflowIds: Object.values(WORKFLOW_IDS),
      ...emulatorOptions,
    }));
  const closeEmulator = () => (sharedEmulator ? Promise.resolve() : emulator.close());
  const config = parseConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    IDV_BASE_URL: emulator.url,
    IDV_API_KEY: TEST_API_KEY,
    IDV_WORKFLOWS: `kyc=${WORKFLOW_IDS.kyc},age=${WORKFLOW_IDS.age}`,
    AUTH_JWT_SECRET: TEST_JWT_SECRET,
    IDV_TIMEOUT_MS: '1000',
    // Most tests start many sessions as one user; the limit has its own tests (duplicates.test.ts).
    RATE_LIMIT_MAX: '0',
    LOG_LEVEL: 'debug',
    ...env,
  });
  const { lines: logs, logger } = capturingLogger(config.logLevel);
  let gateway: RunningGateway;
  try {
    gateway = await startGateway(config, logger, gatewayOptions);
  } catch (error) {
    await closeEmulator();
    throw error;
  }

  const post = async (body: unknown, headers: Record<string, string> = {}): Promise<GraphQLResponse> => {
    const response = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: response.status, headers: response.headers, body: parsed, text };
  };

  const token: TestStack['token'] = (userId = 'user-1', options = {}) =>
    new SignJWT({ sub: userId, ...options.claims })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt()
      .setExpirationTime(options.expiresIn ?? '5m')
      .sign(new TextEncoder().encode(env.AUTH_JWT_SECRET ?? TEST_JWT_SECRET));

  return {
    url: gateway.url,
    gateway,
    emulator,
    logs,
    token,
    post,
    async startVerification(options = {}) {
      const bearer = options.token === undefined ? await token() : options.token;
      const headers: Record<string, string> = { ...options.headers };
      if (bearer !== null) headers.authorization = `Bearer ${bearer}`;
      const fields = { workflow: options.workflow, locale: options.locale, idempotencyKey: options.idempotencyKey };
      const input = Object.values(fields).every((value) => value === undefined) ? undefined : fields;
      return post({ query: START_VERIFICATION, variables: { input } }, headers);
    },
    async close() {
      await gateway.stop();
      await closeEmulator();
    },
  };
}
