/**
 * `npm run bench`: the gateway against two bare baselines, alternately, on loopback.
 *   --quick                 short warm-up and duration, one round (a smoke run)
 *   --burst                 the burst scenario instead (burst.ts)
 *   --profile               profile the gateway under load instead (profile.ts); --target apollo|got|undici
 *                           profiles that target instead
 *   --alloc                 bytes allocated per mutation by each target instead (alloc.ts)
 *   --rounds N --duration S --warmup S --connections N --rate R --only throughput|latency
 * See the README's "Performance" section for how to read the output.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runAllocation } from './alloc.js';
import { runBurst } from './burst.js';
import { load } from './load.js';
import { canPin, cpuTimeMs, peakRssMb, resetPeakRss, stolenMs, type Service } from './processes.js';
import { runProfile } from './profile.js';
import {
  checkGoals,
  clientCostPerCall,
  renderGoals,
  renderGraphqlLayer,
  renderSvg,
  renderTable,
  stealSpread,
  type RoundResult,
  type ScenarioResult,
  type TargetResult,
} from './report.js';
import { CLIENT_CPU, SERVER_CPU, MUTATION, callerAuthorizations, REQUEST_HEADERS, startTarget, startUpstream, TARGET_KINDS, targetName, type TargetKind, type TargetSpec } from './setup.js';
import type { Spread } from './stats.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    burst: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    alloc: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string', default: '32' },
    rate: { type: 'string', default: '300' },
    only: { type: 'string' },
    target: { type: 'string', default: 'gateway' },
  },
});

const quick = args.quick ?? false;
const settings = {
  rounds: bounded(args.rounds, quick ? 1 : 3, 1, 20),
  durationSeconds: bounded(args.duration, quick ? 3 : 10, 1, 120),
  warmupSeconds: bounded(args.warmup, quick ? 2 : 60, 0, 300),
  connections: bounded(args.connections, 32, 1, 256),
  rate: bounded(args.rate, 300, 1, 5000),
};
/** After the closed-loop warm-up of a fixed-rate scenario, this long at its rate (never longer than the warm-up). */
const settleSeconds = Math.min(10, settings.warmupSeconds);
export const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));

function bounded(raw: string | undefined, fallback: number, min: number, max: number): number {
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) throw new Error(`expected a number from ${min} to ${max}, got ${raw}`);
  return value;
}

function targetKind(raw: string | undefined): TargetKind {
  const kind = TARGET_KINDS.find((each) => each === raw);
  if (!kind) throw new Error(`expected --target to be one of ${TARGET_KINDS.join(', ')}, got ${raw}`);
  return kind;
}

/** The load generator (this process) stays off the measured server's core. */
function pinSelf(): void {
  if (!canPin()) return;
  execFileSync('taskset', ['-cp', String(CLIENT_CPU), String(process.pid)], { stdio: 'ignore' });
}

interface ScenarioPlan {
  readonly name: string;
  readonly description: string;
  readonly upstreamLatencyMs: number;
  readonly overallRate: number | null;
  readonly connections: number;
  readonly specs: readonly TargetSpec[];
}

async function runScenario(plan: ScenarioPlan, headers: Readonly<Record<string, string>>, callers: readonly string[]): Promise<ScenarioResult> {
  console.log(`\n== ${plan.name}: ${plan.description}`);
  const upstream = await startUpstream(plan.upstreamLatencyMs);
  const services: Service[] = [];
  try {
    for (const spec of plan.specs) services.push(await startTarget(spec, upstream.url));
    const loadOf = (service: Service, seconds: number, closedLoop = false) =>
      load({
        url: service.url,
        body: MUTATION,
        headers,
        callers,
        connections: plan.connections,
        durationSeconds: seconds,
        ...(plan.overallRate && !closedLoop ? { overallRate: plan.overallRate } : {}),
      });
    if (settings.warmupSeconds > 0) {
      for (const service of services) {
        // Closed loop in every scenario: V8 optimises code by how often it has run, and the gateway
        // has far more of it than a baseline. On Node 24 its CPU per mutation kept falling for half a
        // minute of closed-loop load, a baseline's for 15 s (README, "Warm-up"). Then, at a fixed
        // rate, a spell at that rate, so the heap and its collections settle to it.
        const warm = await loadOf(service, settings.warmupSeconds, true);
        // A target that mostly fails (a baseline out of step with the emulator) would be compared
        // on the cost of its errors: stop rather than print such figures.
        if (warm.errors > warm.responses / 100) {
          throw new Error(`${service.name} answered ${warm.errors} of ${warm.responses} warm-up requests with errors; its figures would compare nothing. ${service.stderrTail()}`);
        }
        let line = `   warm-up ${service.name}: ${settings.warmupSeconds} s closed loop at ${warm.perSecond.toFixed(0)}/s, ${warm.errors} errors`;
        if (plan.overallRate) {
          const settle = await loadOf(service, settleSeconds);
          line += `; then at ${plan.overallRate}/s, ${settle.errors} errors`;
        }
        console.log(line);
      }
    }
    const results: TargetResult[] = plan.specs.map((spec) => ({ name: targetName(spec), spec, rounds: [] }));
    // A B A B: every round loads each target in turn, so slow drift on a shared machine hits all alike.
    for (let round = 1; round <= settings.rounds; round++) {
      for (const [i, service] of services.entries()) {
        const measured = await measure(service, () => loadOf(service, settings.durationSeconds));
        results[i]?.rounds.push(measured);
        console.log(
          `   round ${round} ${service.name}: ${measured.perSecond.toFixed(0)}/s p50 ${measured.p50.toFixed(2)} ms p99 ${measured.p99.toFixed(2)} ms, ` +
            `${measured.cpuMsPerMutation.toFixed(3)} ms CPU/mutation, ${measured.errors} errors` +
            (measured.maxSendLagMs === undefined ? '' : `, load generator at most ${measured.maxSendLagMs.toFixed(1)} ms behind its schedule`) +
            (measured.stolenPercent ? `, steal ${measured.stolenPercent.server.toFixed(1)} % (server core) / ${measured.stolenPercent.client.toFixed(1)} % (generator's)` : ''),
        );
        const exit = service.exited();
        if (exit) throw new Error(`${service.name} exited (${JSON.stringify(exit)}): ${service.stderrTail()}`);
      }
    }
    return { name: plan.name, description: plan.description, upstreamLatencyMs: plan.upstreamLatencyMs, overallRate: plan.overallRate, connections: plan.connections, targets: results };
  } finally {
    for (const service of services) await service.stop();
    await upstream.stop();
  }
}

async function measure(service: Service, run: () => ReturnType<typeof load>): Promise<RoundResult> {
  resetPeakRss(service.pid);
  const stolenBefore = canPin() ? [stolenMs(SERVER_CPU), stolenMs(CLIENT_CPU)] : undefined;
  const cpuBefore = cpuTimeMs(service.pid);
  const result = await run();
  const cpuMs = cpuTimeMs(service.pid) - cpuBefore;
  const stolen = (cpu: number, before: number) => ((stolenMs(cpu) - before) / (result.seconds * 1000)) * 100;
  return {
    perSecond: result.perSecond,
    p50: result.p50,
    p99: result.p99,
    cpuMsPerMutation: cpuMs / Math.max(1, result.responses),
    cpuPercent: (cpuMs / (result.seconds * 1000)) * 100,
    peakRssMb: peakRssMb(service.pid),
    errors: result.errors,
    responses: result.responses,
    ...(result.maxSendLagMs === undefined ? {} : { maxSendLagMs: result.maxSendLagMs }),
    ...(stolenBefore ? { stolenPercent: { server: stolen(SERVER_CPU, stolenBefore[0] as number), client: stolen(CLIENT_CPU, stolenBefore[1] as number) } } : {}),
  };
}

async function main(): Promise<void> {
  pinSelf();
  mkdirSync(RESULTS_DIR, { recursive: true });
  const environment = `node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${canPin() ? 'servers pinned to CPU 1, load generator and upstream to CPU 0' : 'no taskset: nothing pinned'}`;
  console.log(`idv-gateway benchmark: ${environment}`);
  if (args.burst) return runBurst({ quick, resultsDir: RESULTS_DIR });
  if (args.alloc) return runAllocation({ seconds: settings.durationSeconds, warmupSeconds: args.warmup === undefined && !quick ? 20 : settings.warmupSeconds, connections: settings.connections, resultsDir: RESULTS_DIR });
  // The profile covers the gateway's whole life, its warm-up included: a short one by default.
  if (args.profile) return runProfile({ kind: targetKind(args.target), seconds: settings.durationSeconds, warmupSeconds: args.warmup === undefined && !quick ? 10 : settings.warmupSeconds, connections: settings.connections, resultsDir: RESULTS_DIR });
  console.log(`rounds ${settings.rounds}, ${settings.durationSeconds} s each, after a warm-up per target of ${settings.warmupSeconds} s in a closed loop (then ${settleSeconds} s at the fixed rate, where there is one)`);

  const headers = REQUEST_HEADERS;
  const callers = await callerAuthorizations();
  // Apollo Server alone over the same calls: the share of each figure that is the GraphQL layer's.
  const ephemeral = TARGET_KINDS.map((kind) => ({ kind, flow: 'ephemeral' as const }));
  const allPlans: ScenarioPlan[] = [
    {
      name: 'throughput',
      description: `closed loop, ${settings.connections} connections, upstream answers at once: how much CPU each mutation costs`,
      upstreamLatencyMs: 0,
      overallRate: null,
      connections: settings.connections,
      specs: ephemeral,
    },
    {
      name: 'latency',
      description: `${settings.rate} mutations/s fixed rate, 20 ms upstream latency: what users wait; both flows`,
      upstreamLatencyMs: 20,
      overallRate: settings.rate,
      connections: 64,
      specs: [...ephemeral, { kind: 'gateway', flow: 'deeplink' }, { kind: 'got', flow: 'deeplink' }],
    },
  ];
  const plans = allPlans.filter((plan) => !args.only || plan.name === args.only);

  const scenarios: ScenarioResult[] = [];
  for (const plan of plans) scenarios.push(await runScenario(plan, headers, callers));

  console.log('');
  for (const scenario of scenarios) console.log(`${renderTable(scenario)}\n`);
  const goals = checkGoals(
    scenarios.find((s) => s.name === 'throughput'),
    scenarios.find((s) => s.name === 'latency'),
  );
  console.log('Goals (medians over rounds; per-round min–max in parentheses):');
  console.log(renderGoals(goals));
  const layer = renderGraphqlLayer(
    scenarios.find((s) => s.name === 'throughput'),
    scenarios.find((s) => s.name === 'latency'),
  );
  if (layer.length) console.log(`\n${layer.join('\n')}`);
  const cost = clientCostPerCall(scenarios.find((s) => s.name === 'throughput'));
  if (cost) {
    console.log(
      `\nHTTP client cost: a got call costs ${cost.extra.median.toFixed(3)} ms (${cost.extra.min.toFixed(3)}–${cost.extra.max.toFixed(3)}) more CPU than an undici.request call ` +
        `(bare handlers, two calls per mutation: ${cost.got.median.toFixed(3)} vs ${cost.undici.median.toFixed(3)} ms per mutation)`,
    );
  }
  const steal = stealSpread(scenarios);
  if (steal) {
    const range = (s: Spread) => `${s.median.toFixed(1)} % (${s.min.toFixed(1)}–${s.max.toFixed(1)})`;
    console.log(`\nNoise from the host: the hypervisor took ${range(steal.server)} of the server core's time per round, ${range(steal.client)} of the load generator's`);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const json = JSON.stringify({ date: new Date().toISOString(), environment, settings, scenarios, goals, clientCost: cost ?? null, steal: steal ?? null }, null, 2);
  writeFileSync(`${RESULTS_DIR}bench-${stamp}.json`, json);
  writeFileSync(`${RESULTS_DIR}latest.json`, json);
  writeFileSync(`${RESULTS_DIR}latest.svg`, renderSvg(scenarios));
  console.log(`\nWrote ${RESULTS_DIR}latest.json (and bench-${stamp}.json) and latest.svg`);
}

await main();
