/**
 * Pure helpers of the benchmark: percentiles, min–max, and reading a process's CPU time and
 * memory from /proc. Kept free of I/O so the unit tests can pin them down.
 */

/** The p-th percentile (0..100) of values sorted ascending, by nearest rank; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/**
 * Open-loop pacing: how many of `total` requests, due one every `intervalMs` from `startedAt` (the
 * first at `startedAt` itself), are due by `now`.
 */
export function requestsDueBy(now: number, startedAt: number, intervalMs: number, total: number): number {
  if (now < startedAt) return 0;
  return Math.min(total, Math.floor((now - startedAt) / intervalMs) + 1);
}

/** Median, min and max of one figure over the rounds of a run. */
export function spread(values: readonly number[]): Spread {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  const middle = finite.length >> 1;
  const median = finite.length % 2 === 1 ? (finite[middle] as number) : ((finite[middle - 1] as number) + (finite[middle] as number)) / 2;
  return { median, min: finite[0] as number, max: finite[finite.length - 1] as number };
}

/**
 * User + system CPU time, in clock ticks, from the text of /proc/<pid>/stat (all threads of the
 * process: the JS thread, GC helpers and libuv's pool). The command name (field 2) may hold
 * spaces and parentheses, so fields are counted from the last ")".
 */
export function cpuTicksFromStat(stat: string): number {
  const end = stat.lastIndexOf(')');
  if (end < 0) throw new Error('not a /proc/<pid>/stat line');
  // After ")": state is field 3; utime and stime are fields 14 and 15.
  const fields = stat.slice(end + 2).trim().split(/\s+/);
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('no utime/stime in /proc/<pid>/stat');
  return utime + stime;
}

/**
 * Ticks the hypervisor took from one CPU (the `steal` column of its `cpu<N>` line in /proc/stat):
 * time a virtual machine's CPU was ready to run but not running, the noise a shared host adds.
 */
export function stealTicksFromProcStat(stat: string, cpu: number): number {
  const line = stat.split('\n').find((each) => each.startsWith(`cpu${cpu} `));
  // cpuN user nice system idle iowait irq softirq steal …
  const steal = Number(line?.trim().split(/\s+/)[8]);
  if (!Number.isFinite(steal)) throw new Error(`no steal column for cpu${cpu} in /proc/stat`);
  return steal;
}

/** A "Name:   value kB" field of /proc/<pid>/status, in kB (VmRSS, VmHWM: the peak RSS); undefined when absent. */
export function statusFieldKb(status: string, field: string): number | undefined {
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, 'm').exec(status);
  return match ? Number(match[1]) : undefined;
}
