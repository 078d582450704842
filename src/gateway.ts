import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT } from 'jose';
import type { Logger } from 'pino';
import { createAuthenticator } from './auth.js';
import type { KeySetTimings } from './key-set.js';
import { parseWorkflows, type AuthSettings, type GatewayConfig, type WorkflowCatalog } from './config.js';
import type { DrainResult } from './drain.js';
import type { IdvEmulator } from './emulator/index.js';
import { HandoffFlows, type FlowStatus } from './flows.js';
import { Readiness } from './health.js';
import { IdvApiClient } from './idv/client.js';
import { IdvHealthProbe } from './idv/health-probe.js';
import type { UpstreamObserver } from './idv/platform.js';
import { ResilientIdvPlatform, type BreakerState } from './idv/resilient-platform.js';
import { UpstreamGuard } from './idv/upstream-guard.js';
import { GuardedVerification } from './idempotency.js';
import { backlogWarning, kernelBacklogCap } from './listen-queue.js';
import { GatewayMetrics } from './metrics.js';
import { startAdminServer } from './ops-http.js';
import { createServer } from './server.js';
import { flightSettingsFor, SharedFlights } from './state/flight.js';
import { openState, type SharedStateStatus } from './state/index.js';
import { stateSecret } from './state/seal.js';
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
  upstream(): { breaker: BreakerState; active: number; queued: number };
  /**
   * Where idempotency records, in-flight locks and limits live: `active: 'memory'` with
   * `configured: 'redis'` means Redis is unreachable (`reason` says why) and the guarantees hold per
   * instance until it is back. Also in /readyz (`redis`) and the `redis_available` metric.
   */
  sharedState(): SharedStateStatus;
  /** The demo page (development only, when a demo directory was given). */
  readonly demoUrl: string | null;
  /** Where GET /metrics is: the main port, or METRICS_PORT's listener (which also serves /healthz and /readyz). */
  readonly metricsUrl: string;
  /** The METRICS_PORT listener's origin, or null when everything is on the main port. */
  readonly adminUrl: string | null;
  /** What the gateway counts; the resilience and shared-state features report through it. */
  readonly metrics: GatewayMetrics;
  /** What /readyz says; features add their dependencies with `setDependency`. */
  readonly readiness: Readiness;
  /**
   * Graceful shutdown: readiness turns 503, the listener closes, requests in flight finish (for up
   * to SHUTDOWN_GRACE_MS), then the upstream agents and the rest are closed.
   */
  stop(): Promise<ShutdownReport>;
}

export interface ShutdownReport extends DrainResult {
  readonly graceMs: number;
}

/** Workflows the embedded emulator offers when IDV_WORKFLOWS is not set. */
const EMULATOR_WORKFLOWS = 'kyc=emulator-kyc-workflow,age=emulator-age-workflow';
const DEV_USER_ID = 'dev-user';
const DEV_TOKEN_LIFETIME = '12h';
// How long shutdown waits for starts still in flight (a keyed start's kept session call) and for
// cut-off leaders to write their outcome (a Redis round trip or two; commands time out at 1 s).
const FLIGHT_SETTLE_MS = 2000;
// How long, after the upstream client is closed, for starts it cut to record that.
const CUT_SETTLE_MS = 500;

interface UpstreamTarget {
  readonly baseUrl: string;
  readonly publicUrl: string;
  readonly apiKey: string;
  readonly workflows: WorkflowCatalog;
}

export interface GatewayOptions {
  /** Where the built /demo page is (dist/demo); served outside production only. */
  readonly demoDir?: string;
  /** How the JWKS (AUTH_JWKS_URL) is fetched and kept; KEY_SET_TIMINGS by default (tests shorten them). */
  readonly keySetTimings?: KeySetTimings;
}

/**
 * Wires config → metrics and readiness (and the METRICS_PORT listener, so probes see "starting")
 * → emulator (when needed) → data source → use case → HTTP server, and listens.
 */
export async function startGateway(config: GatewayConfig, logger: Logger, options: GatewayOptions = {}): Promise<RunningGateway> {
  const readiness = new Readiness();
  const { idv, operations } = config;
  const metrics = new GatewayMetrics({ workflows: idv.workflows?.ids.keys() ?? parseWorkflows(EMULATOR_WORKFLOWS, null).ids.keys() });
  // A placeholder, so the shape of /readyz is stable while starting; replaced once the state is open.
  readiness.setDependency('redis', () => ({ state: 'not-configured' }));

  const admin = operations.metricsPort === null ? null : await startAdminServer({ port: operations.metricsPort, host: config.host, readiness, metrics });
  const closeOnFailure: (() => Promise<void> | void)[] = [() => admin?.close()];
  try {
    let emulator: IdvEmulator | null = null;
    let target: UpstreamTarget;
    if (idv.baseUrl === null) {
      // Loaded only here, so a production process never even imports the emulator.
      const { startEmulator } = await import('./emulator/index.js');
      const apiKey = idv.apiKey ?? randomBytes(24).toString('base64url');
      const workflows = idv.workflows ?? parseWorkflows(EMULATOR_WORKFLOWS, null);
      emulator = await startEmulator({ apiKey, apiKeyScheme: idv.apiKeyScheme, workflowIds: [...workflows.ids.values()] });
      closeOnFailure.push(() => emulator?.close());
      target = { baseUrl: emulator.url, publicUrl: emulator.url, apiKey, workflows };
    } else {
      // parseConfig guarantees these whenever a base URL is set.
      if (idv.apiKey === null || idv.workflows === null) throw new Error('IDV settings are incomplete');
      target = { baseUrl: idv.baseUrl, publicUrl: idv.publicUrl ?? idv.baseUrl, apiKey: idv.apiKey, workflows: idv.workflows };
    }

    const devSecret = config.auth.key.kind === 'dev' ? randomBytes(32) : undefined;
    const authenticate = createAuthenticator(config.auth, { secret: devSecret, logger, keySetTimings: options.keySetTimings });
    const devToken = config.production ? null : await signDevToken(config.auth, devSecret);

    const idvLogger = logger.child({ component: 'idv' });
    // Each upstream call feeds the metrics and the calling request's operation log line.
    const observer: UpstreamObserver = {
      upstreamCall(step, status, seconds, context) {
        metrics.upstreamCall(step, status, seconds);
        context.upstreamCalls?.push({ step, status: typeof status === 'number' ? status : status.errorCode, ms: Math.round(seconds * 1000) });
      },
    };
    const client = new IdvApiClient(
      { baseUrl: target.baseUrl, apiKey: target.apiKey, apiKeyScheme: idv.apiKeyScheme, timeoutMs: idv.timeoutMs },
      observer,
    );
    closeOnFailure.push(() => client.close());
    const platform = new ResilientIdvPlatform(client, idv.resilience, idvLogger, {
      retry: (step) => metrics.retry(step),
      breakerState: (state) => metrics.breakerState(state),
    });
    metrics.breakerState(platform.breakerState);
    const flows = new HandoffFlows(platform, { flow: idv.flow, tokenTtlSeconds: idv.tokenTtlSeconds, publicUrl: target.publicUrl }, idvLogger);
    const guard = new UpstreamGuard(idv.resilience);
    metrics.observeBulkhead(() => guard.load);
    const state = await openState(config.state, config.rateLimit, logger.child({ component: 'state' }), (up) => metrics.redisAvailable(up));
    closeOnFailure.push(() => state.close());
    // Reported, never failing readiness: without Redis the gateway degrades to per-instance protection.
    readiness.setDependency('redis', () => {
      const { configured, active, reasonCode } = state.status();
      if (configured === 'memory') return { state: 'not-configured' };
      // The code only: the message names addresses, and /readyz is public (the log has it all).
      return active === 'redis' ? { state: 'up' } : { state: 'down', ...(reasonCode === undefined ? {} : { reason: reasonCode }) };
    });
    const flights = new SharedFlights(state.state, flightSettingsFor(idv.resilience.deadlineMs));
    const verification = new GuardedVerification(
      new VerificationService(flows, { workflows: target.workflows }, guard),
      state.state,
      flights,
      stateSecret(target.apiKey),
      logger.child({ component: 'duplicates' }),
      { rateLimited: () => metrics.rateLimited(), replayed: (kind) => metrics.idempotentReplay(kind) },
    );

    const probe = new IdvHealthProbe(
      { baseUrl: target.baseUrl, timeoutMs: idv.healthTimeoutMs, maxAgeMs: idv.healthCacheMs },
      idvLogger,
      (up) => metrics.idvPlatformUp(up),
    );
    closeOnFailure.push(() => probe.close());
    readiness.setDependency('idv', async () => ({ ...(await probe.status()), flow: verification.flowStatus }));
    // Reported, never failing readiness: an open breaker means the platform is down, which every
    // instance sees at once (see health.ts).
    readiness.setDependency('circuitBreaker', () => ({ state: platform.breakerState }));
    readiness.setDependency('bulkhead', () => {
      const load = guard.load;
      return { state: load.queued > 0 ? 'queueing' : 'ok', ...load, maxConcurrency: idv.resilience.maxConcurrency, maxQueue: idv.resilience.maxQueue };
    });

    const demo = config.production ? undefined : options.demoDir;
    const server = await createServer({
      production: config.production,
      http: config.http,
      limits: config.limits,
      logUserIds: config.logUserIds,
      // As many as the bulkhead can work on or queue: the rest would only be refused there, dearer.
      admissionLimit: idv.resilience.maxConcurrency + idv.resilience.maxQueue,
      logger,
      authenticate,
      verification,
      ...(state.apqCache ? { apqCache: state.apqCache } : {}),
      metrics,
      readiness,
      serveMetrics: admin === null,
      ...(devToken ? { sandboxHeaders: { Authorization: `Bearer ${devToken}` } } : {}),
      ...(demo ? { demo: { dir: demo, devToken } } : {}),
    });
    const listening = await server.listen(config.port, config.host);
    const somaxconn = kernelBacklogCap();
    const cappedBacklog = backlogWarning(config.http.listenBacklog, somaxconn);
    if (cappedBacklog) logger.warn({ listenBacklog: config.http.listenBacklog, somaxconn }, cappedBacklog);
    readiness.markReady();

    const shutdown = async (): Promise<ShutdownReport> => {
      readiness.markDraining();
      const { shutdownDelayMs: delayMs } = operations;
      if (delayMs > 0) {
        // Readiness is 503 and every answer says `Connection: close`, but the listener still accepts:
        // a load balancer's health check takes the instance out, its pooled connections are retired
        // after an answer, and only then does the listener close (no request meets a closed port,
        // none is sent on a connection being closed).
        server.announceClose();
        logger.info({ inFlight: server.inFlight, delayMs }, 'draining: readiness is 503; still accepting for SHUTDOWN_DELAY_MS, answering with Connection: close');
        await sleep(delayMs);
      }
      const graceMs = operations.shutdownGraceMs;
      const drained = server.stop(graceMs);
      // server.stop closed the listener synchronously: from here on new connections are refused.
      logger.info({ inFlight: server.inFlight, graceMs }, 'draining: no new connections; waiting for requests in flight');
      const result = await drained;
      // Before the upstream client and the state close under them: a keyed start whose caller left
      // finishes its session call and records the handoff for the retry, and leaders cut off by the
      // drain write their outcome for followers on other instances.
      await Promise.all([verification.settle(FLIGHT_SETTLE_MS), flights.settle(FLIGHT_SETTLE_MS)]);
      client.close();
      probe.close();
      // A start still out then is cut by the close: a moment for it to log that, and for a leader
      // to tell its followers, before the state closes under them.
      await Promise.all([verification.settle(CUT_SETTLE_MS), flights.settle(CUT_SETTLE_MS)]);
      await state.close();
      await emulator?.close();
      // Last, so probes and scrapes see "draining" until the very end.
      await admin?.close();
      return { ...result, graceMs };
    };
    let stopped: Promise<ShutdownReport> | null = null;

    return {
      ...listening,
      emulator,
      devToken,
      idvFlow: () => verification.flowStatus,
      upstream: () => ({ breaker: platform.breakerState, ...guard.load }),
      sharedState: () => state.status(),
      demoUrl: demo ? new URL('/demo/', listening.url).href : null,
      metricsUrl: admin ? `${admin.url}/metrics` : new URL('/metrics', listening.url).href,
      adminUrl: admin?.url ?? null,
      metrics,
      readiness,
      // Once: a second call (a test's cleanup after a drain) gets the same report.
      stop: () => (stopped ??= shutdown()),
    };
  } catch (error) {
    for (const close of closeOnFailure.reverse()) await close();
    throw error;
  }
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
