/**
 * Loaded into a target with `node --import` by `--alloc` (alloc.ts): V8's sampling heap profiler,
 * objects later collected included, started by the first SIGUSR2 and stopped by the next, which
 * writes the profile to ALLOC_PROFILE_OUT. Signals, so that the window is the runner's load alone:
 * not the target's start-up, and not its warm-up.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

// One sample per 4 KB allocated on average: ~60 per mutation, enough for stable totals
// (runs agree within 0.3 %) at a few percent of the target's CPU.
const SAMPLING_INTERVAL_BYTES = 4096;

const out = process.env.ALLOC_PROFILE_OUT;
const session = new Session();
session.connect();
let sampling = false;

process.on('SIGUSR2', () => {
  sampling = !sampling;
  void (sampling ? start() : stop()).catch((error: unknown) => {
    process.stderr.write(`allocation sampler: ${String(error)}\n`);
  });
});

async function start(): Promise<void> {
  await session.post('HeapProfiler.enable');
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: SAMPLING_INTERVAL_BYTES,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
}

async function stop(): Promise<void> {
  const { profile } = await session.post('HeapProfiler.stopSampling');
  if (!out) return;
  // Renamed into place, so that the runner, which waits for the file, never reads half of it.
  writeFileSync(`${out}.partial`, JSON.stringify(profile));
  renameSync(`${out}.partial`, out);
}
