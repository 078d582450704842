/**
 * `npm run bench -- --burst`: N mutations arriving at once (a marketing push: thousands of users
 * tap at the same moment) against a slow upstream. Every one must be answered (a handoff, or a
 * coded error such as the bulkhead's IDV_UNAVAILABLE) within the mutation deadline, without a
 * crash, with peak RSS under the limit. Reports what happens, whichever way it goes.
 */
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { kernelBacklogCap } from '../src/listen-queue.js';
import { load } from './load.js';
import { cpuTimeMs, peakRssMb, resetPeakRss } from './processes.js';
import { MUTATION, callerAuthorizations, REQUEST_HEADERS, startTarget, startUpstream } from './setup.js';
import { percentile } from './stats.js';
import { markdownTable } from './report.js';

const UPSTREAM_LATENCY_MS = 200;
const RSS_LIMIT_MB = 300;
/** The mutation deadline of the resilience issue (IDV_DEADLINE_MS), 8 s unless set. */
const DEADLINE_MS = Number(process.env.IDV_DEADLINE_MS ?? 8000);
/**
 * HTTP_LISTEN_BACKLOG for this run: above the burst, as an operator expecting bursts of thousands
 * of new connections per instance sets it (the kernel still caps it at net.core.somaxconn).
 */
const LISTEN_BACKLOG = 8192;
/** The client gives up this long after the deadline, so the run is bounded whatever happens. */
const CLIENT_GRACE_MS = 22_000;

export interface BurstOutcome {
  /** From the moment the burst was fired: what a user tapping then waits. */
  readonly latencyMs: number;
  /**
   * From the moment this client's TCP connection was established (the kernel then holds it for
   * the gateway): the same answer without the load generator's own delay in opening 5 000
   * connections, which shares its core with the upstream. NaN when it never connected.
   */
  readonly sinceConnectedMs: number;
  /** 'handoff', an extensions.code, or what else came back (HTTP status, socket error). */
  readonly outcome: string;
  /** The HTTP status, 0 without an answer: a 503 IDV_UNAVAILABLE was shed at the door, a 200 one refused by the bulkhead. */
  readonly status: number;
}

export async function runBurst(options: { quick: boolean; resultsDir: string }): Promise<void> {
  const size = options.quick ? 1000 : 5000;
  console.log(`\n== burst: ${size} mutations at once, ${UPSTREAM_LATENCY_MS} ms upstream latency, deadline ${DEADLINE_MS} ms`);
  const headers = REQUEST_HEADERS;
  const callers = await callerAuthorizations();
  const upstream = await startUpstream(UPSTREAM_LATENCY_MS);
  const somaxconn = kernelBacklogCap();
  const acceptQueue = somaxconn === null ? LISTEN_BACKLOG : Math.min(LISTEN_BACKLOG, somaxconn);
  console.log(`   accept queue: ${acceptQueue} connections (HTTP_LISTEN_BACKLOG ${LISTEN_BACKLOG}, net.core.somaxconn ${somaxconn ?? 'unknown'})`);
  if (acceptQueue < size) {
    console.log(
      `   NOTE: the kernel queues at most ${acceptQueue} of the ${size} new connections. It drops the handshakes of the rest that arrive while\n` +
        `   the queue is full; TCP's retransmissions complete them 1 s, 3 s, 7 s later, unseen by the gateway, so some answers may come late\n` +
        `   whatever it does. To measure the gateway alone, raise the cap first: sysctl -w net.core.somaxconn=${LISTEN_BACKLOG}`,
    );
  }
  const gateway = await startTarget({ kind: 'gateway', flow: 'ephemeral' }, upstream.url, {
    env: { IDV_DEADLINE_MS: String(DEADLINE_MS), HTTP_LISTEN_BACKLOG: String(LISTEN_BACKLOG) },
  });
  try {
    // A warm process, as in production: the JIT has seen the path before the push arrives.
    const warm = await load({ url: gateway.url, body: MUTATION, headers, callers, connections: 32, durationSeconds: options.quick ? 1 : 3 });
    console.log(`   warm-up: ${warm.responses} mutations, ${warm.errors} errors`);
    await new Promise((resolve) => setTimeout(resolve, 1000));

    resetPeakRss(gateway.pid);
    const cpuBefore = cpuTimeMs(gateway.pid);
    const started = performance.now();
    const outcomes = await fireAtOnce(gateway.url, headers, callers, size);
    const wallMs = performance.now() - started;
    const cpuMs = cpuTimeMs(gateway.pid) - cpuBefore;
    const peak = peakRssMb(gateway.pid);
    const crashed = gateway.exited();
    const after = crashed ? null : await fireAtOnce(gateway.url, headers, callers, 1);

    const counts = new Map<string, number>();
    for (const { outcome } of outcomes) counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
    const latencies = Float64Array.from(outcomes.map((o) => o.latencyMs)).sort();
    const handoffs = counts.get('handoff') ?? 0;
    const coded = [...counts].filter(([outcome]) => /^[A-Z_]+$/.test(outcome)).reduce((sum, [, n]) => sum + n, 0);
    const uncoded = size - handoffs - coded;
    const max = latencies[latencies.length - 1] ?? Number.NaN;
    const late = outcomes.filter((o) => o.latencyMs > DEADLINE_MS).length;
    const sinceConnected = Float64Array.from(outcomes.map((o) => o.sinceConnectedMs).filter((ms) => !Number.isNaN(ms))).sort();
    const lateSinceConnected = sinceConnected.filter((ms) => ms > DEADLINE_MS).length;

    console.log('');
    console.log(
      markdownTable([
        ['outcome (HTTP status)', 'count', 'p50 ms', 'p99 ms', 'max ms', `after ${DEADLINE_MS} ms`],
        ...[...groups(outcomes)].sort((a, b) => b[1].length - a[1].length).map(([name, group]) => [name, String(group.length), ...latencyFigures(group)]),
      ]),
    );
    console.log('');
    const rows = [
      ['figure', 'value'],
      ['mutations sent at once', String(size)],
      ['connections the kernel queues for the gateway', `${acceptQueue}${somaxconn === null ? '' : ` (net.core.somaxconn ${somaxconn})`}`],
      ['handoffs', String(handoffs)],
      ['coded errors (extensions.code)', String(coded)],
      ['not answered with a handoff or a code', String(uncoded)],
      ['latency p50 / p99 / max', `${percentile(latencies, 50).toFixed(0)} / ${percentile(latencies, 99).toFixed(0)} / ${max.toFixed(0)} ms`],
      [`answered after the ${DEADLINE_MS} ms deadline`, String(late)],
      [
        'counted from each connection: p50 / p99 / max, late',
        `${percentile(sinceConnected, 50).toFixed(0)} / ${percentile(sinceConnected, 99).toFixed(0)} / ${(sinceConnected[sinceConnected.length - 1] ?? Number.NaN).toFixed(0)} ms, ${lateSinceConnected} late`,
      ],
      ['all answered in', `${wallMs.toFixed(0)} ms`],
      ['gateway CPU during the burst', `${cpuMs.toFixed(0)} ms (${(cpuMs / size).toFixed(3)} ms per mutation)`],
      ['gateway peak RSS', `${peak.toFixed(0)} MB`],
      ['gateway crashed', crashed ? `yes: ${JSON.stringify(crashed)}` : 'no'],
      ['a mutation after the burst', after ? (after[0]?.outcome ?? '?') : '(gateway is gone)'],
    ];
    console.log(markdownTable(rows));
    const goal = uncoded === 0 && late === 0 && !crashed && peak <= RSS_LIMIT_MB;
    console.log(
      `\nGoal (every mutation a handoff or a coded error within ${DEADLINE_MS} ms, no crash, peak RSS ≤ ${RSS_LIMIT_MB} MB): ${goal ? 'MET' : 'NOT MET'}` +
        `${uncoded ? `; ${uncoded} without a handoff or code` : ''}${late ? `; ${late} late` : ''}${crashed ? '; crashed' : ''}${peak > RSS_LIMIT_MB ? `; peak RSS ${peak.toFixed(0)} MB` : ''}`,
    );
    const json = { date: new Date().toISOString(), node: process.version, size, upstreamLatencyMs: UPSTREAM_LATENCY_MS, deadlineMs: DEADLINE_MS, acceptQueue, somaxconn, counts: Object.fromEntries(counts), handoffs, coded, uncoded, late, lateSinceConnected, p50: percentile(latencies, 50), p99: percentile(latencies, 99), maxMs: max, wallMs, cpuMs, peakRssMb: peak, crashed, goalMet: goal };
    writeFileSync(`${options.resultsDir}burst-latest.json`, JSON.stringify(json, null, 2));
    console.log(`\nWrote ${options.resultsDir}burst-latest.json`);
  } finally {
    await gateway.stop();
    await upstream.stop();
  }
}

/** The answers by outcome and HTTP status. */
function groups(outcomes: readonly BurstOutcome[]): Map<string, BurstOutcome[]> {
  const byName = new Map<string, BurstOutcome[]>();
  for (const outcome of outcomes) {
    const name = `${outcome.outcome} (${outcome.status || 'none'})`;
    byName.set(name, [...(byName.get(name) ?? []), outcome]);
  }
  return byName;
}

/** Latency p50, p99, max and how many came after the deadline, for a group of answers: which were late. */
function latencyFigures(group: readonly BurstOutcome[]): string[] {
  const latencies = Float64Array.from(group.map((o) => o.latencyMs)).sort();
  const late = latencies.filter((ms) => ms > DEADLINE_MS).length;
  return [percentile(latencies, 50).toFixed(0), percentile(latencies, 99).toFixed(0), (latencies[latencies.length - 1] ?? Number.NaN).toFixed(0), String(late)];
}

/** Opens `count` connections and sends one mutation on each, all from one synchronous loop. */
function fireAtOnce(url: string, headers: Readonly<Record<string, string>>, callers: readonly string[], count: number): Promise<BurstOutcome[]> {
  const target = new URL(url);
  if (target.hostname !== '127.0.0.1') throw new Error('the burst only targets 127.0.0.1');
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const body = Buffer.from(MUTATION);
  const one = (_: unknown, index: number) =>
    new Promise<BurstOutcome>((resolve) => {
      const started = performance.now();
      let connectedAt = Number.NaN;
      const done = (outcome: string, status = 0) => {
        const now = performance.now();
        resolve({ outcome, status, latencyMs: now - started, sinceConnectedMs: now - connectedAt });
      };
      const req = http.request(
        url,
        { method: 'POST', agent, headers: { ...headers, authorization: callers[index % callers.length] ?? '', 'content-length': String(body.length) }, timeout: DEADLINE_MS + CLIENT_GRACE_MS },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => done(classify(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')), res.statusCode ?? 0));
          res.on('error', (error: NodeJS.ErrnoException) => done(`socket ${error.code ?? error.message}`));
        },
      );
      req.on('socket', (socket) => socket.once('connect', () => (connectedAt = performance.now())));
      req.on('timeout', () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
      req.on('error', (error: NodeJS.ErrnoException) => done(`socket ${error.code ?? error.message}`));
      req.end(body);
    });
  const all = Array.from({ length: count }, one);
  return Promise.all(all).finally(() => agent.destroy());
}

export function classify(status: number, text: string): string {
  try {
    const body = JSON.parse(text) as { data?: { startVerification?: { sessionId?: unknown } }; errors?: { extensions?: { code?: unknown } }[] };
    if (typeof body.data?.startVerification?.sessionId === 'string') return 'handoff';
    const code = body.errors?.[0]?.extensions?.code;
    if (typeof code === 'string') return code;
  } catch {
    // Not JSON: reported by status below.
  }
  return `HTTP ${status} without a code`;
}
