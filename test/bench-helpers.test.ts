import { summarizeAllocations, type SamplingProfile } from '../bench/alloc.js';
import { classify } from '../bench/burst.js';
import { packageOf, summarizeProfile, type CpuProfile } from '../bench/cpuprofile.js';
import { isHandoff } from '../bench/load.js';
import { checkGoals, renderGraphqlLayer, stealSpread, type ScenarioResult } from '../bench/report.js';
import { cpuTicksFromStat, percentile, requestsDueBy, spread, statusFieldKb, stealTicksFromProcStat } from '../bench/stats.js';

// The benchmark's pure helpers (the benchmark itself is never part of `npm test`).
describe('benchmark helpers', () => {
  it('paces an open loop: the first request at once, then one per interval, never more than asked for', () => {
    expect(requestsDueBy(999, 1000, 3.5, 10)).toBe(0);
    expect(requestsDueBy(1000, 1000, 3.5, 10)).toBe(1);
    expect(requestsDueBy(1003.4, 1000, 3.5, 10)).toBe(1);
    expect(requestsDueBy(1003.5, 1000, 3.5, 10)).toBe(2);
    // A timer that fires late sends everything due meanwhile, so the rate holds.
    expect(requestsDueBy(1020, 1000, 3.5, 10)).toBe(6);
    expect(requestsDueBy(5000, 1000, 3.5, 10)).toBe(10);
  });

  it('reads one CPU\'s steal time from /proc/stat, and fails loudly without it', () => {
    const stat = 'cpu  444174 381 63867 666245 15875 0 28216 19497 0 0\ncpu0 222000 190 31000 333000 7000 0 14000 9000 0 0\ncpu1 222174 191 32867 333245 8875 0 14216 10497 0 0\nintr 1 2 3\n';
    expect(stealTicksFromProcStat(stat, 0)).toBe(9000);
    expect(stealTicksFromProcStat(stat, 1)).toBe(10497);
    expect(() => stealTicksFromProcStat(stat, 2)).toThrow('no steal column for cpu2');
    expect(() => stealTicksFromProcStat('cpu1 1 2 3\n', 1)).toThrow();
  });

  it('sums up steal time over every round of every scenario, or nothing when it was not read', () => {
    const round = (server?: number) => ({ perSecond: 1, p50: 1, p99: 1, cpuMsPerMutation: 1, cpuPercent: 1, peakRssMb: 1, errors: 0, responses: 1, ...(server === undefined ? {} : { stolenPercent: { server, client: server * 2 } }) });
    const scenario = (rounds: ReturnType<typeof round>[]): ScenarioResult => ({ name: 'latency', description: '', upstreamLatencyMs: 20, overallRate: 300, connections: 1, targets: [{ name: 'gateway', spec: { kind: 'gateway', flow: 'ephemeral' }, rounds }] });
    expect(stealSpread([scenario([round(1), round(3)]), scenario([round(2)])])).toEqual({ server: { median: 2, min: 1, max: 3 }, client: { median: 4, min: 2, max: 6 } });
    expect(stealSpread([scenario([round()])])).toBeUndefined();
  });

  it('sums an allocation profile by function and by package, a native function\'s bytes going to its JavaScript caller\'s package', () => {
    const frame = (functionName: string, url: string, lineNumber = 0) => ({ functionName, url, lineNumber });
    const profile: SamplingProfile = {
      head: {
        callFrame: frame('(root)', ''),
        selfSize: 0,
        children: [
          {
            callFrame: frame('Options', 'file:///app/node_modules/got/dist/source/core/options.js', 384),
            selfSize: 100,
            children: [{ callFrame: frame('assign', ''), selfSize: 40, children: [] }],
          },
          {
            callFrame: frame('start', 'file:///app/dist/idempotency.js', 58),
            selfSize: 10,
            children: [
              { callFrame: frame('Map', ''), selfSize: 5, children: [] },
              { callFrame: frame('nextTick', 'node:internal/process/task_queues', 102), selfSize: 3, children: [] },
            ],
          },
          { callFrame: frame('(V8 API)', ''), selfSize: 7, children: [] },
        ],
      },
    };
    const summary = summarizeAllocations(profile);
    expect(summary.bytes).toBe(165);
    expect(Object.fromEntries(summary.packages)).toEqual({ got: 140, 'gateway (dist/)': 15, 'node core': 3, '(root)': 7 });
    expect(summary.functions.get('Options got/dist/source/core/options.js:385')).toBe(100);
    expect(summary.functions.get('assign (native)')).toBe(40);
    expect(summary.functions.get('start dist/idempotency.js:59')).toBe(10);
  });

  it('percentile is nearest-rank over sorted values', () => {
    const values = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile(values, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it('spread gives the median, min and max, ignoring non-finite values', () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3 });
    expect(spread([4, 1, 2, 3, Number.NaN])).toEqual({ median: 2.5, min: 1, max: 4 });
    expect(spread([]).median).toBeNaN();
  });

  it('reads utime + stime from /proc/<pid>/stat, even with spaces and parentheses in the name', () => {
    const stat = '4242 (node (x) y) S 1 4242 4242 0 -1 4194560 9000 0 0 0 1234 567 0 0 20 0 11 0 100 1000000 5000 18446744073709551615';
    expect(cpuTicksFromStat(stat)).toBe(1234 + 567);
    expect(() => cpuTicksFromStat('garbage')).toThrow();
  });

  it('reads kB fields of /proc/<pid>/status', () => {
    const status = 'Name:\tnode\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n';
    expect(statusFieldKb(status, 'VmHWM')).toBe(204800);
    expect(statusFieldKb(status, 'VmRSS')).toBe(102400);
    expect(statusFieldKb(status, 'VmSwap')).toBeUndefined();
  });

  it('counts only a handoff as a success', () => {
    expect(isHandoff('{"data":{"startVerification":{"sessionId":"abc"}}}')).toBe(true);
    expect(isHandoff('{"errors":[{"extensions":{"code":"IDV_UNAVAILABLE"}}],"data":{"startVerification":null}}')).toBe(false);
    expect(classify(200, '{"data":{"startVerification":{"sessionId":"abc"}}}')).toBe('handoff');
    expect(classify(200, '{"errors":[{"extensions":{"code":"IDV_UNAVAILABLE"}}],"data":null}')).toBe('IDV_UNAVAILABLE');
    expect(classify(503, 'Service Unavailable')).toBe('HTTP 503 without a code');
  });

  it('summarises a cpuprofile by self time per function and per package, without idle time', () => {
    const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 9 });
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: frame('(root)', '') },
        { id: 2, callFrame: frame('(idle)', '') },
        { id: 3, callFrame: frame('request', 'file:///app/node_modules/got/dist/source/core/index.js') },
        { id: 4, callFrame: frame('verify', 'file:///app/dist/auth.js') },
      ],
      samples: [3, 3, 4, 2, 3],
      timeDeltas: [0, 1000, 1000, 1000, 5000],
    };
    const summary = summarizeProfile(profile);
    expect(summary.busyMs).toBe(3);
    expect(summary.functions[0]).toEqual({ name: 'request got/dist/source/core/index.js:10', ms: 2, percent: (2 / 3) * 100 });
    expect(summary.packages.map((p) => p.name)).toEqual(['got', 'gateway (dist/)']);
    expect(packageOf('node:internal/http', 'x')).toBe('node core');
    expect(packageOf('', '(garbage collector)')).toBe('(garbage collector)');
  });

  it('checks the goals against the same-client baseline, round by round', () => {
    const round = (p50: number, p99: number, cpu: number) => ({ perSecond: 1, p50, p99, cpuMsPerMutation: cpu, cpuPercent: 1, peakRssMb: 1, errors: 0, responses: 1 });
    const scenario = (name: string, gateway: ReturnType<typeof round>, got: ReturnType<typeof round>): ScenarioResult => ({
      name,
      description: '',
      upstreamLatencyMs: 20,
      overallRate: null,
      connections: 1,
      targets: [
        { name: 'gateway', spec: { kind: 'gateway', flow: 'ephemeral' }, rounds: [gateway] },
        { name: 'got', spec: { kind: 'got', flow: 'ephemeral' }, rounds: [got] },
      ],
    });
    const checks = checkGoals(scenario('throughput', round(0, 0, 1.1), round(0, 0, 1)), scenario('latency', round(41.5, 50, 0), round(41, 44, 0)));
    expect(checks.map((c) => c.met)).toEqual([true, false, true]);
  });

  it('sets Apollo Server alone against the got baseline and the gateway, and says when it alone is over the CPU goal', () => {
    const round = (p50: number, p99: number, cpu: number) => ({ perSecond: 1, p50, p99, cpuMsPerMutation: cpu, cpuPercent: 1, peakRssMb: 1, errors: 0, responses: 1 });
    const scenario = (name: string, overallRate: number | null, cpu: { gateway: number; apollo: number; got: number }): ScenarioResult => ({
      name,
      description: '',
      upstreamLatencyMs: 20,
      overallRate,
      connections: 1,
      targets: [
        { name: 'gateway', spec: { kind: 'gateway', flow: 'ephemeral' }, rounds: [round(43, 60, cpu.gateway)] },
        { name: 'apollo', spec: { kind: 'apollo', flow: 'ephemeral' }, rounds: [round(42.5, 54, cpu.apollo)] },
        { name: 'got', spec: { kind: 'got', flow: 'ephemeral' }, rounds: [round(42, 50, cpu.got)] },
      ],
    });
    const over = renderGraphqlLayer(scenario('throughput', null, { gateway: 2, apollo: 1.3, got: 1 }), scenario('latency', 300, { gateway: 1.5, apollo: 1.2, got: 1 }));
    expect(over).toEqual([
      expect.stringMatching(/^Apollo Server \+ got, alone/),
      "  throughput: CPU per mutation ×1.30 the got baseline's; the gateway's ×1.54 Apollo Server's alone",
      expect.stringMatching(/no build on it can meet that goal/),
      "  latency: CPU per mutation ×1.20 the got baseline's, p50 +0.50 ms, p99 +4.00 ms; the gateway's ×1.25 Apollo Server's alone",
    ]);
    const within = renderGraphqlLayer(scenario('throughput', null, { gateway: 2, apollo: 1.1, got: 1 }), undefined);
    expect(within).toHaveLength(2);
    expect(renderGraphqlLayer(undefined, undefined)).toEqual([]);
  });
});
