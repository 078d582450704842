/**
 * The benchmark's table (printed), its JSON and a small SVG chart. Every figure is the median
 * over rounds with its min–max, because the machine is shared and noisy.
 */
import { spread, type Spread } from './stats.js';
import type { TargetSpec } from './setup.js';

export interface RoundResult {
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly cpuMsPerMutation: number;
  /** CPU time over wall time, in % of one core: ~100 means the target was the bottleneck. */
  readonly cpuPercent: number;
  readonly peakRssMb: number;
  readonly errors: number;
  readonly responses: number;
  /** Fixed-rate runs: how far behind its schedule the load generator sent a request at worst, in ms. */
  readonly maxSendLagMs?: number;
  /** % of the round's wall time the hypervisor took from the server's core and from the load generator's (steal time). */
  readonly stolenPercent?: { readonly server: number; readonly client: number };
}

export interface TargetResult {
  readonly name: string;
  readonly spec: TargetSpec;
  readonly rounds: RoundResult[];
}

export interface ScenarioResult {
  readonly name: string;
  readonly description: string;
  readonly upstreamLatencyMs: number;
  readonly overallRate: number | null;
  readonly connections: number;
  readonly targets: TargetResult[];
}

export interface Summary {
  readonly perSecond: Spread;
  readonly p50: Spread;
  readonly p99: Spread;
  readonly cpuMsPerMutation: Spread;
  readonly cpuPercent: Spread;
  readonly peakRssMb: Spread;
  readonly errors: number;
  readonly responses: number;
}

export function summarize(target: TargetResult): Summary {
  const of = (pick: (round: RoundResult) => number) => spread(target.rounds.map(pick));
  return {
    perSecond: of((r) => r.perSecond),
    p50: of((r) => r.p50),
    p99: of((r) => r.p99),
    cpuMsPerMutation: of((r) => r.cpuMsPerMutation),
    cpuPercent: of((r) => r.cpuPercent),
    peakRssMb: of((r) => r.peakRssMb),
    errors: target.rounds.reduce((sum, r) => sum + r.errors, 0),
    responses: target.rounds.reduce((sum, r) => sum + r.responses, 0),
  };
}

/** The baseline a target is compared with: the same flow with the given client, if it ran. */
export function baselineOf(scenario: ScenarioResult, target: TargetResult, kind: 'got' | 'undici'): TargetResult | undefined {
  return (
    scenario.targets.find((t) => t.spec.kind === kind && t.spec.flow === target.spec.flow) ??
    scenario.targets.find((t) => t.spec.kind === kind && t.spec.flow === 'ephemeral')
  );
}

function figure(s: Spread, digits: number): string {
  if (!Number.isFinite(s.median)) return '–';
  const f = (n: number) => n.toFixed(digits);
  return s.min === s.max ? f(s.median) : `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

/** Per-round ratio or difference against a baseline (rounds alternate, so round i pairs with round i). */
function paired(target: TargetResult, base: TargetResult, pick: (r: RoundResult) => number, op: (a: number, b: number) => number): Spread {
  const values = target.rounds.map((round, i) => {
    const other = base.rounds[i];
    return other ? op(pick(round), pick(other)) : Number.NaN;
  });
  return spread(values);
}

/** Steal time over every measured round (server core, load generator's core); undefined when not read. */
export function stealSpread(scenarios: readonly ScenarioResult[]): { server: Spread; client: Spread } | undefined {
  const stolen = scenarios.flatMap((scenario) => scenario.targets.flatMap((target) => target.rounds.flatMap((round) => (round.stolenPercent ? [round.stolenPercent] : []))));
  if (stolen.length === 0) return undefined;
  return { server: spread(stolen.map((each) => each.server)), client: spread(stolen.map((each) => each.client)) };
}

export function renderTable(scenario: ScenarioResult): string {
  const header = ['target', 'mutations/s', 'p50 ms', 'p99 ms', 'CPU ms/mutation', 'CPU % of a core', 'peak RSS MB', 'errors', 'CPU ×got', 'CPU ×undici', 'p50 Δgot ms', 'p99 Δgot ms'];
  const rows = scenario.targets.map((target) => {
    const s = summarize(target);
    const cells = [
      target.name,
      figure(s.perSecond, 0),
      figure(s.p50, 2),
      figure(s.p99, 2),
      figure(s.cpuMsPerMutation, 3),
      figure(s.cpuPercent, 0),
      figure(s.peakRssMb, 0),
      `${s.errors}/${s.responses}`,
    ];
    const got = target.spec.kind === 'gateway' || target.spec.kind === 'apollo' ? baselineOf(scenario, target, 'got') : undefined;
    const undici = target.spec.kind === 'undici' ? undefined : baselineOf(scenario, target, 'undici');
    const cpu = (r: RoundResult) => r.cpuMsPerMutation;
    cells.push(got ? figure(paired(target, got, cpu, (a, b) => a / b), 2) : '');
    cells.push(undici ? figure(paired(target, undici, cpu, (a, b) => a / b), 2) : '');
    cells.push(got ? figure(paired(target, got, (r) => r.p50, (a, b) => a - b), 2) : '');
    cells.push(got ? figure(paired(target, got, (r) => r.p99, (a, b) => a - b), 2) : '');
    return cells;
  });
  const title = `${scenario.name}: ${scenario.description}`;
  return [title, markdownTable([header, ...rows])].join('\n');
}

export function markdownTable(rows: string[][]): string {
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((row) => (row[col] ?? '').length))) ?? [];
  const line = (row: string[]) => `| ${row.map((cell, col) => cell.padEnd(widths[col] ?? 0)).join(' | ')} |`;
  const [head, ...body] = rows;
  return [line(head ?? []), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

export interface GoalCheck {
  readonly goal: string;
  readonly measured: string;
  readonly met: boolean | null;
}

/** Goal 2: the gateway's CPU per mutation at most this many times the got baseline's. */
const CPU_GOAL_RATIO = 1.2;

/** Goals 1 and 2 of issue 8, from the medians (with the per-round spread shown). */
export function checkGoals(throughput: ScenarioResult | undefined, latency: ScenarioResult | undefined): GoalCheck[] {
  const checks: GoalCheck[] = [];
  const gatewayOf = (s: ScenarioResult | undefined) => s?.targets.find((t) => t.spec.kind === 'gateway' && t.spec.flow === 'ephemeral');
  const latencyGateway = gatewayOf(latency);
  const latencyGot = latency && latencyGateway ? baselineOf(latency, latencyGateway, 'got') : undefined;
  if (latencyGateway && latencyGot) {
    const p50 = paired(latencyGateway, latencyGot, (r) => r.p50, (a, b) => a - b);
    const p99 = paired(latencyGateway, latencyGot, (r) => r.p99, (a, b) => a - b);
    checks.push({ goal: 'latency: gateway p50 ≤ got baseline p50 + 1 ms', measured: `+${figure(p50, 2)} ms`, met: p50.median <= 1 });
    checks.push({ goal: 'latency: gateway p99 ≤ got baseline p99 + 5 ms', measured: `+${figure(p99, 2)} ms`, met: p99.median <= 5 });
  }
  const throughputGateway = gatewayOf(throughput);
  const throughputGot = throughput && throughputGateway ? baselineOf(throughput, throughputGateway, 'got') : undefined;
  if (throughputGateway && throughputGot) {
    const ratio = paired(throughputGateway, throughputGot, (r) => r.cpuMsPerMutation, (a, b) => a / b);
    checks.push({ goal: `CPU: gateway CPU per mutation ≤ ${CPU_GOAL_RATIO} × got baseline`, measured: `×${figure(ratio, 2)}`, met: ratio.median <= CPU_GOAL_RATIO });
  }
  return checks;
}

/**
 * Apollo Server alone over the same calls, against the got baseline and the gateway: how much of
 * the gateway's figures is the GraphQL layer's own, before any of the gateway's features.
 */
export function renderGraphqlLayer(throughput: ScenarioResult | undefined, latency: ScenarioResult | undefined): string[] {
  const lines: string[] = [];
  const cpu = (r: RoundResult) => r.cpuMsPerMutation;
  for (const scenario of [throughput, latency]) {
    const apollo = scenario?.targets.find((t) => t.spec.kind === 'apollo');
    const gateway = scenario?.targets.find((t) => t.spec.kind === 'gateway' && t.spec.flow === 'ephemeral');
    const got = scenario && apollo ? baselineOf(scenario, apollo, 'got') : undefined;
    if (!scenario || !apollo || !got) continue;
    const ratio = paired(apollo, got, cpu, (a, b) => a / b);
    let line = `  ${scenario.name}: CPU per mutation ×${figure(ratio, 2)} the got baseline's`;
    if (scenario.overallRate !== null) {
      line += `, p50 +${figure(paired(apollo, got, (r) => r.p50, (a, b) => a - b), 2)} ms, p99 +${figure(paired(apollo, got, (r) => r.p99, (a, b) => a - b), 2)} ms`;
    }
    if (gateway) line += `; the gateway's ×${figure(paired(gateway, apollo, cpu, (a, b) => a / b), 2)} Apollo Server's alone`;
    lines.push(line);
    if (scenario.overallRate === null && ratio.median > CPU_GOAL_RATIO) {
      lines.push(`  (Apollo Server alone is over the CPU goal's ×${CPU_GOAL_RATIO} already: no build on it can meet that goal on this machine)`);
    }
  }
  return lines.length ? ['Apollo Server + got, alone (the same schema and upstream calls; no auth, logging, metrics, duplicate protection or resilience):', ...lines] : [];
}

export function renderGoals(checks: readonly GoalCheck[]): string {
  return checks.map((c) => `  ${c.met === null ? '?' : c.met ? 'MET    ' : 'NOT MET'}  ${c.goal}: ${c.measured}`).join('\n');
}

/** What one `got` call costs over one `undici.request` call, from the two baselines (2 calls per mutation). */
export function clientCostPerCall(throughput: ScenarioResult | undefined): { got: Spread; undici: Spread; extra: Spread } | undefined {
  const got = throughput?.targets.find((t) => t.spec.kind === 'got' && t.spec.flow === 'ephemeral');
  const undici = throughput?.targets.find((t) => t.spec.kind === 'undici' && t.spec.flow === 'ephemeral');
  if (!got || !undici) return undefined;
  return {
    got: summarize(got).cpuMsPerMutation,
    undici: summarize(undici).cpuMsPerMutation,
    extra: paired(got, undici, (r) => r.cpuMsPerMutation, (a, b) => (a - b) / 2),
  };
}

/** Horizontal bars: CPU per mutation per target (throughput), p50 and p99 per target (latency). */
export function renderSvg(scenarios: readonly ScenarioResult[]): string {
  const barHeight = 16;
  const labelWidth = 260;
  const chartWidth = 360;
  const parts: string[] = [];
  let y = 10;
  const panel = (title: string, bars: { label: string; value: number; min: number; max: number; color: string }[], unit: string) => {
    parts.push(`<text x="10" y="${y + 12}" font-weight="bold">${escapeXml(title)}</text>`);
    y += 22;
    const top = Math.max(...bars.map((b) => (Number.isFinite(b.max) ? b.max : 0)), 1e-9);
    for (const bar of bars) {
      const w = Number.isFinite(bar.value) ? (bar.value / top) * chartWidth : 0;
      const x0 = labelWidth + (bar.min / top) * chartWidth;
      const x1 = labelWidth + (bar.max / top) * chartWidth;
      parts.push(
        `<text x="${labelWidth - 6}" y="${y + 12}" text-anchor="end">${escapeXml(bar.label)}</text>`,
        `<rect x="${labelWidth}" y="${y + 2}" width="${w.toFixed(1)}" height="${barHeight - 4}" fill="${bar.color}"/>`,
        Number.isFinite(x0) && Number.isFinite(x1) ? `<line x1="${x0.toFixed(1)}" x2="${x1.toFixed(1)}" y1="${y + 8}" y2="${y + 8}" stroke="#000"/>` : '',
        `<text x="${labelWidth + chartWidth + 8}" y="${y + 12}">${Number.isFinite(bar.value) ? bar.value.toFixed(3) : '–'} ${unit}</text>`,
      );
      y += barHeight + 2;
    }
    y += 12;
  };
  for (const scenario of scenarios) {
    const summaries = scenario.targets.map((t) => ({ name: t.name, s: summarize(t) }));
    const colorOf = (name: string) => (name.startsWith('gateway') ? '#3b6fd6' : '#999');
    if (scenario.overallRate === null) {
      panel(`${scenario.name}: CPU per mutation`, summaries.map(({ name, s }) => ({ label: name, value: s.cpuMsPerMutation.median, min: s.cpuMsPerMutation.min, max: s.cpuMsPerMutation.max, color: colorOf(name) })), 'ms');
      panel(`${scenario.name}: mutations/s`, summaries.map(({ name, s }) => ({ label: name, value: s.perSecond.median, min: s.perSecond.min, max: s.perSecond.max, color: colorOf(name) })), '/s');
    } else {
      panel(`${scenario.name}: p50 latency`, summaries.map(({ name, s }) => ({ label: name, value: s.p50.median, min: s.p50.min, max: s.p50.max, color: colorOf(name) })), 'ms');
      panel(`${scenario.name}: p99 latency`, summaries.map(({ name, s }) => ({ label: name, value: s.p99.median, min: s.p99.min, max: s.p99.max, color: colorOf(name) })), 'ms');
    }
  }
  const width = labelWidth + chartWidth + 90;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" font-family="sans-serif" font-size="11">\n<rect width="100%" height="100%" fill="#fff"/>\n${parts.filter(Boolean).join('\n')}\n</svg>\n`;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c] ?? c);
}
