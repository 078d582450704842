/**
 * The benchmark's child processes (upstream, gateway, baselines): started, pinned to a core,
 * watched through /proc, stopped. Linux only, for /proc.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpuTicksFromStat, stealTicksFromProcStat, statusFieldKb } from './stats.js';

export interface Service {
  readonly name: string;
  readonly pid: number;
  readonly url: string;
  /** Log lines the service wrote to stdout since it was ready (drained, counted, not kept). */
  readonly stdoutLines: () => number;
  /** The last lines of stderr, for error reports. */
  readonly stderrTail: () => string;
  readonly exited: () => { code: number | null; signal: NodeJS.Signals | null } | null;
  stop(): Promise<void>;
}

export interface ServiceOptions {
  readonly name: string;
  readonly args: readonly string[];
  readonly env: Record<string, string>;
  /** Pin to this CPU with taskset (ignored when taskset is missing). */
  readonly cpu?: number;
  /** Reads the service's URL from one stdout line once it is ready; undefined for other lines. */
  readonly readyUrl: (line: string) => string | undefined;
}

const READY_TIMEOUT_MS = 20_000;
let tasksetAvailable: boolean | undefined;
let clockTicks: number | undefined;

// Every service still running. If the benchmark itself is stopped (SIGTERM from `timeout` or a CI
// job's cancel, which reaches only this process) or crashes, they must not outlive it: a gateway
// left listening, or an upstream left busy, would skew whatever runs next on the machine.
const running = new Set<ChildProcess>();
let cleanupInstalled = false;

function killRunningOnExit(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
  for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15]] as const) {
    process.once(signal, () => process.exit(128 + number));
  }
}

export function canPin(): boolean {
  if (tasksetAvailable === undefined) {
    try {
      execFileSync('taskset', ['-V'], { stdio: 'ignore' });
      tasksetAvailable = true;
    } catch {
      tasksetAvailable = false;
    }
  }
  return tasksetAvailable;
}

/** Starts a node process (taskset execs it, so the pid is node's own) and waits until it is ready. */
export async function startService(options: ServiceOptions): Promise<Service> {
  const node = [process.execPath, ...options.args];
  const [command, ...args] = options.cpu !== undefined && canPin() ? ['taskset', '-c', String(options.cpu), ...node] : node;
  const child: ChildProcess = spawn(command as string, args, {
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killRunningOnExit();
  running.add(child);
  let lines = 0;
  let stderr = '';
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      exit = { code, signal };
      resolve();
    });
  });

  const url = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    let ready: string | undefined;
    const timer = setTimeout(() => reject(new Error(`${options.name} was not ready within ${READY_TIMEOUT_MS} ms: ${stderr}`)), READY_TIMEOUT_MS);
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      // Like a log shipper: read everything the service writes, keep only a count.
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        lines += 1;
        if (ready === undefined && (ready = options.readyUrl(line)) !== undefined) {
          clearTimeout(timer);
          resolve(ready);
        }
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${options.name} exited before it was ready (${JSON.stringify(exit)}): ${stderr}`));
    });
  });

  return {
    name: options.name,
    pid: child.pid as number,
    url,
    stdoutLines: () => lines,
    stderrTail: () => stderr,
    exited: () => exit,
    async stop() {
      if (exit) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** `{"ready": url}` lines (upstream, baselines). */
export const readyLine = (line: string): string | undefined => {
  try {
    const parsed = JSON.parse(line) as { ready?: unknown };
    return typeof parsed.ready === 'string' ? parsed.ready : undefined;
  } catch {
    return undefined;
  }
};

/** The gateway's pino line "gateway ready" with its URL. */
export const gatewayReadyLine = (line: string): string | undefined => {
  try {
    const parsed = JSON.parse(line) as { msg?: unknown; url?: unknown };
    return parsed.msg === 'gateway ready' && typeof parsed.url === 'string' ? parsed.url : undefined;
  } catch {
    return undefined;
  }
};

/** The process's own CPU time (user + system, all threads) so far, in ms. */
export function cpuTimeMs(pid: number): number {
  return ticksToMs(cpuTicksFromStat(readFileSync(`/proc/${pid}/stat`, 'utf8')));
}

/** Time the hypervisor took from `cpu` so far (its steal time), in ms. */
export function stolenMs(cpu: number): number {
  return ticksToMs(stealTicksFromProcStat(readFileSync('/proc/stat', 'utf8'), cpu));
}

/** /proc counts CPU time in clock ticks (USER_HZ). */
function ticksToMs(ticks: number): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return (ticks * 1000) / clockTicks;
}

/**
 * Resets the kernel's peak-RSS mark (VmHWM) so the next reading is the peak of one run.
 * Returns false where /proc/<pid>/clear_refs cannot be written; the peak is then since start.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Peak RSS (VmHWM) in MB since start or the last reset. */
export function peakRssMb(pid: number): number {
  const kb = statusFieldKb(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmHWM');
  return kb === undefined ? Number.NaN : kb / 1024;
}
