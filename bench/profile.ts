/**
 * `npm run bench -- --profile [--target apollo|got|undici]`: the gateway (or another target) under
 * closed-loop load with `node --cpu-prof`, then the top self-time functions and packages of the
 * profile. Open the .cpuprofile in Chrome's DevTools (Performance panel) or speedscope for a flame
 * graph.
 */
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { renderSummary, summarizeProfile, type CpuProfile } from './cpuprofile.js';
import { load } from './load.js';
import { MUTATION, callerAuthorizations, REQUEST_HEADERS, startTarget, startUpstream, targetName, type TargetKind } from './setup.js';

export async function runProfile(options: { kind: TargetKind; seconds: number; warmupSeconds: number; connections: number; resultsDir: string }): Promise<void> {
  const dir = join(options.resultsDir, 'profiles');
  mkdirSync(dir, { recursive: true });
  const startedAt = Date.now();
  const spec = { kind: options.kind, flow: 'ephemeral' } as const;
  console.log(`\n== profile: ${targetName(spec)} under closed-loop load (${options.connections} connections) for ${options.seconds} s after ${options.warmupSeconds} s`);
  const headers = REQUEST_HEADERS;
  const callers = await callerAuthorizations();
  const upstream = await startUpstream(0);
  const target = await startTarget(spec, upstream.url, {
    nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=250'],
  });
  try {
    const run = (seconds: number) => load({ url: target.url, body: MUTATION, headers, callers, connections: options.connections, durationSeconds: seconds });
    if (options.warmupSeconds > 0) await run(options.warmupSeconds);
    const result = await run(options.seconds);
    console.log(`   ${result.perSecond.toFixed(0)} mutations/s, ${result.errors} errors`);
  } finally {
    // SIGTERM: the target shuts down and exits, and V8 writes the profile on exit.
    await target.stop();
    await upstream.stop();
  }
  const written = readdirSync(dir)
    .filter((file) => file.endsWith('.cpuprofile'))
    .map((file) => join(dir, file))
    .filter((file) => statSync(file).mtimeMs >= startedAt)
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  if (!written) throw new Error(`no .cpuprofile was written to ${dir}`);
  console.log(`\n${written}\n`);
  console.log(renderSummary(summarizeProfile(JSON.parse(readFileSync(written, 'utf8')) as CpuProfile)));
}
