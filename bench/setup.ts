/**
 * What the benchmark runs: the upstream emulator, the gateway in production mode (the built
 * dist/main.js, configured through its environment as an operator would) and the baselines.
 */
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { gatewayReadyLine, readyLine, startService, type Service } from './processes.js';

export const API_KEY = 'bench-api-key-5e1c7a90b2d4';
export const WORKFLOW_ID = '68a72388660070d96275a8c2';
export const JWT_SECRET = 'bench-jwt-secret-that-is-long-enough-for-hs256';
/** The measured server's core; the load generator and the upstream share the other one. */
export const SERVER_CPU = 1;
export const CLIENT_CPU = 0;

export type Flow = 'ephemeral' | 'deeplink';
export type TargetKind = 'gateway' | 'apollo' | 'got' | 'undici';

export interface TargetSpec {
  readonly kind: TargetKind;
  readonly flow: Flow;
}

const KIND_NAMES: Readonly<Record<TargetKind, string>> = {
  gateway: 'gateway',
  apollo: 'Apollo Server + got, alone',
  got: 'bare node:http + got',
  undici: 'bare node:http + undici',
};

/** Every kind, in the order the benchmark runs them. */
export const TARGET_KINDS = Object.keys(KIND_NAMES) as readonly TargetKind[];

export const targetName = (spec: TargetSpec): string => `${KIND_NAMES[spec.kind]}${spec.flow === 'deeplink' ? ' (deeplink)' : ''}`;

// Compiled into dist-bench/bench/; the gateway itself is the build's dist/main.js.
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const GATEWAY_MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

export function startUpstream(latencyMs: number): Promise<Service> {
  return startService({
    name: `upstream (${latencyMs} ms)`,
    args: [here('./upstream.js')],
    env: { BENCH_API_KEY: API_KEY, BENCH_WORKFLOW_ID: WORKFLOW_ID, BENCH_LATENCY_MS: String(latencyMs) },
    cpu: CLIENT_CPU,
    readyUrl: readyLine,
  });
}

/**
 * Node as the production image runs it (Dockerfile: its NODE_OPTIONS, and the flags of its CMD and
 * of `npm start`), for every target alike, so that a runtime setting cannot tilt the comparison.
 * --no-memory-reducer: without it, on Node 20, each target came back cold to every round after
 * idling through the other targets' rounds (README, "Performance").
 */
export const NODE_FLAGS: readonly string[] = ['--no-memory-reducer'];
export const NODE_OPTIONS = '--max-semi-space-size=16';

export interface TargetOptions {
  /** Extra node flags, e.g. --cpu-prof for the gateway. */
  readonly nodeFlags?: readonly string[];
  readonly env?: Record<string, string>;
}

export function startTarget(spec: TargetSpec, upstreamUrl: string, options: TargetOptions = {}): Promise<Service> {
  const flags = [...NODE_FLAGS, ...(options.nodeFlags ?? [])];
  if (spec.kind === 'gateway') {
    return startService({
      name: targetName(spec),
      args: [...flags, GATEWAY_MAIN],
      env: {
        NODE_ENV: 'production',
        NODE_OPTIONS,
        HOST: '127.0.0.1',
        PORT: '0',
        IDV_BASE_URL: upstreamUrl,
        IDV_API_KEY: API_KEY,
        IDV_WORKFLOWS: `kyc=${WORKFLOW_ID}`,
        IDV_FLOW: spec.flow,
        AUTH_JWT_SECRET: JWT_SECRET,
        LOG_LEVEL: 'info',
        // A few thousand callers send every request here, each far more than the per-caller limit
        // (5 per 10 minutes) allows: with it on, the gateway would mostly answer RATE_LIMITED.
        RATE_LIMIT_MAX: '0',
        ...options.env,
      },
      cpu: SERVER_CPU,
      readyUrl: gatewayReadyLine,
    });
  }
  return startService({
    name: targetName(spec),
    args: [...flags, here(spec.kind === 'apollo' ? './apollo-baseline.js' : './baseline.js')],
    env: {
      // Apollo Server reads it (as the gateway does); the bare baselines do not.
      NODE_ENV: 'production',
      NODE_OPTIONS,
      IDV_BASE_URL: upstreamUrl,
      IDV_API_KEY: API_KEY,
      BENCH_WORKFLOW_ID: WORKFLOW_ID,
      BENCH_CLIENT: spec.kind === 'undici' ? 'undici' : 'got',
      BENCH_FLOW: spec.flow,
      ...options.env,
    },
    cpu: SERVER_CPU,
    readyUrl: readyLine,
  });
}

export const MUTATION = JSON.stringify({
  query: 'mutation StartVerification($input: StartVerificationInput) { startVerification(input: $input) { sessionId captureUrl mobileUrl expiresAt workflow } }',
  variables: { input: { workflow: 'kyc' } },
});

/** A caller's token, as an app would send it (valid for the run). */
export function userToken(userId = 'bench-user'): Promise<string> {
  return new SignJWT({ sub: userId })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(new TextEncoder().encode(JWT_SECRET));
}

export const REQUEST_HEADERS: Readonly<Record<string, string>> = { 'content-type': 'application/json' };

/**
 * Authorization headers of distinct callers, used in turn: the gateway joins concurrent identical
 * requests of one caller into one upstream session (single flight) and limits each caller, so one
 * caller sending everything would measure the gateway doing less than one session per request.
 */
export function callerAuthorizations(count = 2000): Promise<string[]> {
  return Promise.all(Array.from({ length: count }, async (_, i) => `Bearer ${await userToken(`bench-user-${i}`)}`));
}
