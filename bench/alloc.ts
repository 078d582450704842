/**
 * `npm run bench -- --alloc`: what each target allocates per mutation, by package and function,
 * from V8's sampling heap profiler with collected objects included (alloc-sampler.ts). Unlike CPU
 * time it does not depend on the machine or its neighbours (runs agree within 0.3 %), and
 * every byte allocated is work for the garbage collector, on the CPU and in the latency tail.
 */
import { existsSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { packageOf, shortUrl } from './cpuprofile.js';
import { load } from './load.js';
import { MUTATION, callerAuthorizations, REQUEST_HEADERS, startTarget, startUpstream, TARGET_KINDS, targetName, type TargetKind, type TargetSpec } from './setup.js';

interface SamplingNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly selfSize: number;
  readonly children: readonly SamplingNode[];
}

export interface SamplingProfile {
  readonly head: SamplingNode;
}

export interface AllocationSummary {
  readonly bytes: number;
  /** Bytes by package; a native function's allocations (Object.assign, a Map) go to its JavaScript caller's. */
  readonly packages: ReadonlyMap<string, number>;
  /** Bytes by function (name, file and line). */
  readonly functions: ReadonlyMap<string, number>;
}

export function summarizeAllocations(profile: SamplingProfile): AllocationSummary {
  const packages = new Map<string, number>();
  const functions = new Map<string, number>();
  let bytes = 0;
  const add = (totals: Map<string, number>, key: string, size: number) => totals.set(key, (totals.get(key) ?? 0) + size);
  const visit = (node: SamplingNode, callerPackage: string) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const own = url === '' ? callerPackage : packageOf(url, functionName);
    if (node.selfSize > 0) {
      bytes += node.selfSize;
      add(packages, own, node.selfSize);
      add(functions, `${functionName || '(anonymous)'}${url ? ` ${shortUrl(url)}:${lineNumber + 1}` : ' (native)'}`, node.selfSize);
    }
    for (const child of node.children) visit(child, own);
  };
  visit(profile.head, '(root)');
  return { bytes, packages, functions };
}

const TARGETS: readonly TargetSpec[] = TARGET_KINDS.map((kind) => ({ kind, flow: 'ephemeral' }));
const SAMPLER = fileURLToPath(new URL('./alloc-sampler.js', import.meta.url));
const kb = (bytes: number, mutations: number) => bytes / mutations / 1024;

export async function runAllocation(options: { seconds: number; warmupSeconds: number; connections: number; resultsDir: string }): Promise<void> {
  console.log(`\n== allocation: bytes allocated per mutation, closed loop (${options.connections} connections), ${options.seconds} s sampled after ${options.warmupSeconds} s`);
  const callers = await callerAuthorizations();
  const upstream = await startUpstream(0);
  const results: AllocationResult[] = [];
  try {
    for (const spec of TARGETS) {
      const file = join(options.resultsDir, `alloc-${spec.kind}.heapprofile`);
      rmSync(file, { force: true });
      const target = await startTarget(spec, upstream.url, { nodeFlags: [`--import=${SAMPLER}`], env: { ALLOC_PROFILE_OUT: file } });
      try {
        const run = (seconds: number) => load({ url: target.url, body: MUTATION, headers: REQUEST_HEADERS, callers, connections: options.connections, durationSeconds: seconds });
        if (options.warmupSeconds > 0) await run(options.warmupSeconds);
        process.kill(target.pid, 'SIGUSR2');
        // The sampler starts on the target's next turn of its event loop; the load's first
        // requests may miss it, which only lowers the total by a fraction of a mutation.
        await sleep(200);
        const result = await run(options.seconds);
        process.kill(target.pid, 'SIGUSR2');
        await until(() => existsSync(file), 10_000, `${targetName(spec)} wrote no allocation profile`);
        if (result.errors > 0) console.log(`   ${targetName(spec)}: ${result.errors} errors of ${result.responses}`);
        const summary = summarizeAllocations(JSON.parse(readFileSync(file, 'utf8')) as SamplingProfile);
        results.push({ kind: spec.kind, name: targetName(spec), mutations: result.responses, summary });
        console.log(`   ${targetName(spec)}: ${result.responses} mutations, ${kb(summary.bytes, result.responses).toFixed(1)} KB allocated per mutation`);
      } finally {
        await target.stop();
      }
    }
  } finally {
    await upstream.stop();
  }
  console.log(`\n${renderAllocation(results)}`);
  const json = results.map(({ name, mutations, summary }) => ({
    target: name,
    mutations,
    kbPerMutation: kb(summary.bytes, mutations),
    packages: Object.fromEntries([...summary.packages].map(([key, bytes]) => [key, kb(bytes, mutations)])),
  }));
  writeFileSync(join(options.resultsDir, 'alloc-latest.json'), `${JSON.stringify({ date: new Date().toISOString(), node: process.version, results: json }, null, 2)}\n`);
  console.log(`\nWrote ${join(options.resultsDir, 'alloc-latest.json')} (and the profiles, alloc-<target>.heapprofile: open them in Chrome DevTools' Memory panel)`);
}

interface AllocationResult {
  readonly kind: TargetKind;
  readonly name: string;
  readonly mutations: number;
  readonly summary: AllocationSummary;
}

export function renderAllocation(results: readonly AllocationResult[], top = 15): string {
  const of = (kind: TargetKind) => results.find((result) => result.kind === kind);
  const [gateway, apollo, got] = [of('gateway'), of('apollo'), of('got')];
  const lines = ['| target | KB allocated/mutation | ×got |', '|---|---|---|'];
  const gotKb = got ? kb(got.summary.bytes, got.mutations) : Number.NaN;
  for (const { name, mutations, summary } of results) {
    const own = kb(summary.bytes, mutations);
    lines.push(`| ${name} | ${own.toFixed(1)} | ${name === got?.name ? '' : (own / gotKb).toFixed(2)} |`);
  }
  if (!gateway) return lines.join('\n');
  for (const base of [got, apollo]) {
    if (!base) continue;
    const names = new Set([...gateway.summary.packages.keys(), ...base.summary.packages.keys()]);
    const over = [...names]
      .map((name) => ({ name, delta: kb(gateway.summary.packages.get(name) ?? 0, gateway.mutations) - kb(base.summary.packages.get(name) ?? 0, base.mutations) }))
      .sort((a, b) => b.delta - a.delta)
      .slice(0, top);
    lines.push('', `${gateway.name} over ${base.name}, by package (KB per mutation):`);
    for (const { name, delta } of over) lines.push(`  ${(delta >= 0 ? '+' : '') + delta.toFixed(2)}`.padEnd(10) + ` ${name}`);
  }
  const own = [...gateway.summary.functions].filter(([name]) => /(^| )dist\//.test(name.split(' ').slice(1).join(' ')));
  lines.push('', `${gateway.name}'s own code (dist/), top functions (KB per mutation):`);
  for (const [name, bytes] of own.sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${kb(bytes, gateway.mutations).toFixed(2).padStart(6)}  ${name}`);
  return lines.join('\n');
}

async function until(condition: () => boolean, timeoutMs: number, failure: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(failure);
    await sleep(50);
  }
}
