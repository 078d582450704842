/**
 * A strict parser for the Prometheus text exposition format (version 0.0.4), enough to prove that
 * /metrics is well-formed and to read values from it. prom-client's own parser is not public.
 *
 * It throws, naming the line, on anything a Prometheus server would refuse: a malformed line or
 * label, a sample before its family's TYPE, a family declared twice, a duplicate series, a
 * histogram whose buckets are not cumulative or whose +Inf bucket differs from its count.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Readonly<Record<MetricType, readonly string[]>> = {
  counter: [''],
  gauge: [''],
  untyped: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

export class Exposition {
  constructor(readonly families: ReadonlyMap<string, Family>) {}

  family(name: string): Family {
    const family = this.families.get(name);
    if (!family) throw new Error(`no metric family ${name}`);
    return family;
  }

  /** The value of the one sample named `name` whose labels include `labels`; 0 when there is none. */
  value(name: string, labels: Record<string, string> = {}): number {
    const matches = this.samples(name, labels);
    if (matches.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${matches.length} series`);
    return matches[0]?.value ?? 0;
  }

  /** Every sample named `name` whose labels include `labels`. */
  samples(name: string, labels: Record<string, string> = {}): Sample[] {
    const out: Sample[] = [];
    for (const family of this.families.values()) {
      for (const sample of family.samples) {
        if (sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value)) out.push(sample);
      }
    }
    return out;
  }
}

export function parsePrometheusText(text: string): Exposition {
  const families = new Map<string, Family>();
  const helps = new Map<string, string>();
  const seen = new Set<string>();
  const lines = text.split('\n');
  lines.forEach((line, index) => {
    const where = `line ${index + 1} (${JSON.stringify(line.slice(0, 80))})`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!match) return; // a plain comment
      const [, keyword, name = '', rest = ''] = match;
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name at ${where}`);
      if (keyword === 'HELP') {
        if (helps.has(name)) throw new Error(`second HELP for ${name} at ${where}`);
        helps.set(name, rest);
        return;
      }
      if (!TYPES.has(rest as MetricType)) throw new Error(`unknown type at ${where}`);
      if (families.has(name)) throw new Error(`second TYPE for ${name} at ${where}`);
      families.set(name, { name, type: rest as MetricType, help: helps.get(name) ?? '', samples: [] });
      return;
    }
    const sample = parseSample(line, where);
    const family = familyOf(sample.name, families);
    if (!family) throw new Error(`sample without a TYPE declared before it at ${where}`);
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (seen.has(key)) throw new Error(`duplicate series at ${where}`);
    seen.add(key);
    family.samples.push(sample);
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return new Exposition(families);
}

function familyOf(sampleName: string, families: Map<string, Family>): Family | undefined {
  for (const family of families.values()) {
    if (SUFFIXES[family.type].some((suffix) => `${family.name}${suffix}` === sampleName)) return family;
  }
  return undefined;
}

function parseSample(line: string, where: string): Sample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (!nameMatch) throw new Error(`bad sample at ${where}`);
  const name = nameMatch[0];
  let position = name.length;
  const labels: Record<string, string> = {};
  if (line[position] === '{') {
    position += 1;
    while (line[position] !== '}') {
      const labelMatch = /^([^=]+)="/.exec(line.slice(position));
      if (!labelMatch || !LABEL_NAME.test(labelMatch[1] ?? '')) throw new Error(`bad label at ${where}`);
      const labelName = labelMatch[1] as string;
      position += labelMatch[0].length;
      let value = '';
      for (;;) {
        const char = line[position];
        if (char === undefined) throw new Error(`unterminated label value at ${where}`);
        position += 1;
        if (char === '"') break;
        if (char === '\\') {
          const escaped = line[position];
          position += 1;
          if (escaped === 'n') value += '\n';
          else if (escaped === '\\' || escaped === '"') value += escaped;
          else throw new Error(`bad escape in a label value at ${where}`);
        } else {
          value += char;
        }
      }
      if (labelName in labels) throw new Error(`label ${labelName} twice at ${where}`);
      labels[labelName] = value;
      if (line[position] === ',') position += 1;
      else if (line[position] !== '}') throw new Error(`expected "," or "}" at ${where}`);
    }
    position += 1;
  }
  const rest = line.slice(position).split(' ');
  if (rest[0] !== '' || rest.length < 2 || rest.length > 3) throw new Error(`expected " value [timestamp]" at ${where}`);
  const value = parseValue(rest[1] ?? '', where);
  if (rest[2] !== undefined && !/^-?\d+$/.test(rest[2])) throw new Error(`bad timestamp at ${where}`);
  return { name, labels, value };
}

function parseValue(raw: string, where: string): number {
  // Prometheus reads values with Go's ParseFloat, which takes NaN and Inf in any case (prom-client writes "Nan").
  if (/^nan$/i.test(raw)) return Number.NaN;
  const infinity = /^([-+]?)inf(inity)?$/i.exec(raw);
  if (infinity) return infinity[1] === '-' ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw)) throw new Error(`bad value at ${where}`);
  return Number(raw);
}

function checkHistogram(family: Family): void {
  const series = new Map<string, { buckets: [number, number][]; count?: number }>();
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (sample.name.endsWith('_bucket')) {
      if (le === undefined) throw new Error(`${family.name}: a bucket without "le"`);
      entry.buckets.push([parseValue(le, `le="${le}"`), sample.value]);
    } else if (sample.name.endsWith('_count')) {
      entry.count = sample.value;
    }
  }
  for (const [key, { buckets, count }] of series) {
    buckets.sort((a, b) => a[0] - b[0]);
    buckets.forEach(([, value], i) => {
      if (i > 0 && value < (buckets[i - 1]?.[1] ?? 0)) throw new Error(`${family.name} ${key}: buckets are not cumulative`);
    });
    const last = buckets.at(-1);
    if (!last || last[0] !== Number.POSITIVE_INFINITY || last[1] !== count) {
      throw new Error(`${family.name} ${key}: the +Inf bucket must exist and equal _count`);
    }
  }
}
