/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per function and per package,
 * the top entries first. Also a CLI: `node dist-bench/bench/cpuprofile.js <file.cpuprofile> [top]`.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  /** µs since the previous sample. */
  readonly timeDeltas: readonly number[];
}

export interface SelfTime {
  readonly name: string;
  readonly ms: number;
  /** Of all non-idle time. */
  readonly percent: number;
}

export interface ProfileSummary {
  readonly busyMs: number;
  readonly functions: SelfTime[];
  readonly packages: SelfTime[];
}

/** Where a function lives: an npm package, node's internals, the gateway's own code, or V8's bookkeeping. */
export function packageOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const inModules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (inModules) return inModules[1] as string;
  if (url.startsWith('node:')) return 'node core';
  if (/\/dist\//.test(url)) return 'gateway (dist/)';
  return url;
}

export function shortUrl(url: string): string {
  const inModules = /node_modules\/(.*)$/.exec(url);
  if (inModules) return inModules[1] as string;
  const inDist = /\/(dist\/.*)$/.exec(url);
  return inDist ? (inDist[1] as string) : url;
}

export function summarizeProfile(profile: CpuProfile, top = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  // A sample's time is the delta to the next one (as Chrome's DevTools count it).
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i] as number;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  const functions = new Map<string, number>();
  const packages = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)?.callFrame;
    if (!frame || frame.functionName === '(idle)') continue;
    busyUs += us;
    const name = `${frame.functionName || '(anonymous)'}${frame.url ? ` ${shortUrl(frame.url)}:${frame.lineNumber + 1}` : ''}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
    const pkg = packageOf(frame.url, frame.functionName);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
  }
  const ranked = (totals: Map<string, number>) =>
    [...totals]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: us / 1000, percent: busyUs ? (us / busyUs) * 100 : 0 }));
  return { busyMs: busyUs / 1000, functions: ranked(functions), packages: ranked(packages) };
}

export function renderSummary(summary: ProfileSummary): string {
  const lines = [`busy (non-idle) time: ${summary.busyMs.toFixed(0)} ms`, '', 'self time by package:'];
  for (const entry of summary.packages) lines.push(`  ${entry.percent.toFixed(1).padStart(5)} %  ${entry.ms.toFixed(0).padStart(7)} ms  ${entry.name}`);
  lines.push('', 'top functions by self time:');
  for (const entry of summary.functions) lines.push(`  ${entry.percent.toFixed(1).padStart(5)} %  ${entry.ms.toFixed(0).padStart(7)} ms  ${entry.name}`);
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node dist-bench/bench/cpuprofile.js <file.cpuprofile> [top]');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  console.log(renderSummary(summarizeProfile(profile, top ? Number(top) : 25)));
}
