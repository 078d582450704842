import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Logger } from 'pino';
import { createAuthenticator } from './auth.js';
import { parseWorkflows, type AuthSettings, type GatewayConfig, type WorkflowCatalog } from './config.js';
import type { IdvEmulator } from './emulator/index.js';
import { HandoffFlows, type FlowStatus } from './flows.js';
import { IdvApiClient } from './idv/client.js';
import { ResilientIdvPlatform } from './idv/resilient-platform.js';
import { UpstreamGuard } from './idv/upstream-guard.js';
import { createServer } from './server.js';
import { VerificationService } from './verification.js';

export interface RunningGateway {
  /** The GraphQL endpoint. */
  readonly url: string;
  readonly port: number;
  /** The embedded IDV emulator, when no IDV_BASE_URL was configured (development only). */
  readonly emulator: IdvEmulator | null;
  /** A bearer token for trying the gateway out (development only, never with a JWKS). */
  readonly devToken: string | null;
  /** The upstream flow configured and in use (IDV_FLOW=auto decides on the first call), for readiness. */
  idvFlow(): FlowStatus;
  /** The circuit breaker's state and the bulkhead's load, for readiness and metrics. */
  upstream(): { breaker: 'closed' | 'open' | 'half-open'; active: number; queued: number };
  /** The demo page (development only, when a demo directory was given). */
  readonly demoUrl: string | null;
  stop(): Promise<void>;
}

/** Workflows the embedded emulator offers when IDV_WORKFLOWS is not set. */
const EMULATOR_WORKFLOWS = 'kyc=emulator-kyc-workflow,age=emulator-age-workflow';
const DEV_USER_ID = 'dev-user';
const DEV_TOKEN_LIFETIME = '12h';

interface UpstreamTarget {
  readonly baseUrl: string;
  readonly publicUrl: string;
  readonly apiKey: string;
  readonly workflows: WorkflowCatalog;
}

export interface GatewayOptions {
  /** Where the built /demo page is (dist/demo); served outside production only. */
  readonly demoDir?: string;
}

/** Wires config → emulator (when needed) → data source → use case → HTTP server, and listens. */
export async function startGateway(config: GatewayConfig, logger: Logger, options: GatewayOptions = {}): Promise<RunningGateway> {
  let emulator: IdvEmulator | null = null;
  let target: UpstreamTarget;
  const { idv } = config;
  if (idv.baseUrl === null) {
    // Loaded only here, so a production process never even imports the emulator.
    const { startEmulator } = await import('./emulator/index.js');
    const apiKey = idv.apiKey ?? randomBytes(24).toString('base64url');
    const workflows = idv.workflows ?? parseWorkflows(EMULATOR_WORKFLOWS, null);
    emulator = await startEmulator({ apiKey, apiKeyScheme: idv.apiKeyScheme, workflowIds: [...workflows.ids.values()] });
    target = { baseUrl: emulator.url, publicUrl: emulator.url, apiKey, workflows };
  } else {
    // parseConfig guarantees these whenever a base URL is set.
    if (idv.apiKey === null || idv.workflows === null) throw new Error('IDV settings are incomplete');
    target = { baseUrl: idv.baseUrl, publicUrl: idv.publicUrl ?? idv.baseUrl, apiKey: idv.apiKey, workflows: idv.workflows };
  }

  const devSecret = config.auth.key.kind === 'dev' ? randomBytes(32) : undefined;
  const authenticate = createAuthenticator(config.auth, devSecret);
  const devToken = config.production ? null : await signDevToken(config.auth, devSecret);

  const idvLogger = logger.child({ component: 'idv' });
  const client = new IdvApiClient({ baseUrl: target.baseUrl, apiKey: target.apiKey, apiKeyScheme: idv.apiKeyScheme, timeoutMs: idv.timeoutMs });
  const platform = new ResilientIdvPlatform(client, idv.resilience, idvLogger);
  const flows = new HandoffFlows(
    platform,
    { flow: idv.flow, tokenTtlSeconds: idv.tokenTtlSeconds, publicUrl: target.publicUrl },
    idvLogger,
  );
  const guard = new UpstreamGuard(idv.resilience);
  const verification = new VerificationService(flows, { workflows: target.workflows }, guard);
  const demo = config.production ? undefined : options.demoDir;
  const server = await createServer({
    production: config.production,
    http: config.http,
    limits: config.limits,
    logUserIds: config.logUserIds,
    logger,
    authenticate,
    verification,
    ...(devToken ? { sandboxHeaders: { Authorization: `Bearer ${devToken}` } } : {}),
    ...(demo ? { demo: { dir: demo, devToken } } : {}),
  });

  let listening: { url: string; port: number };
  try {
    listening = await server.listen(config.port, config.host);
  } catch (error) {
    client.close();
    await emulator?.close();
    throw error;
  }
  return {
    ...listening,
    emulator,
    devToken,
    idvFlow: () => verification.flowStatus,
    upstream: () => ({ breaker: platform.breakerState, ...guard.load }),
    demoUrl: demo ? new URL('/demo/', listening.url).href : null,
    async stop() {
      await server.stop();
      client.close();
      await emulator?.close();
    },
  };
}

/** A token the gateway itself accepts, for the start-up banner and Sandbox; null when keys live elsewhere (JWKS). */
async function signDevToken(auth: AuthSettings, devSecret: Uint8Array | undefined): Promise<string | null> {
  const secret = auth.key.kind === 'secret' ? new TextEncoder().encode(auth.key.secret) : devSecret;
  if (!secret) return null;
  const jwt = new SignJWT({ [auth.userClaim]: DEV_USER_ID }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(DEV_TOKEN_LIFETIME);
  if (auth.issuer) jwt.setIssuer(auth.issuer);
  if (auth.audience) jwt.setAudience(auth.audience);
  return jwt.sign(secret);
}
