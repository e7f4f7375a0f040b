/**
 * A small parser of the Prometheus text exposition format (version 0.0.4), enough to check
 * what our services expose: HELP/TYPE comments, samples with labels (escaped values), values
 * including NaN and ±Inf, optional timestamps. Throws on a line it does not understand.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
}

export interface Exposition {
  families: Map<string, Family>;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

function parseValue(s: string, line: string): number {
  // Like Prometheus (Go's ParseFloat): NaN and Inf in any case (prom-client writes "Nan").
  const l = s.toLowerCase();
  if (l === 'nan') return Number.NaN;
  if (l === '+inf' || l === 'inf') return Number.POSITIVE_INFINITY;
  if (l === '-inf') return Number.NEGATIVE_INFINITY;
  const v = Number(s);
  if (s === '' || Number.isNaN(v)) throw new Error(`bad sample value in: ${line}`);
  return v;
}

function parseLabels(s: string, line: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1; // after '{'
  for (;;) {
    while (s[i] === ' ' || s[i] === ',') i++;
    if (s[i] === '}') return { labels, rest: s.slice(i + 1) };
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(s.slice(i));
    if (!m) throw new Error(`bad label name in: ${line}`);
    i += m[0].length;
    if (s[i] !== '=' || s[i + 1] !== '"') throw new Error(`expected ="..." in: ${line}`);
    i += 2;
    let v = '';
    for (;;) {
      const c = s[i];
      if (c === undefined) throw new Error(`unterminated label value in: ${line}`);
      if (c === '"') break;
      if (c === '\\') {
        const n = s[i + 1];
        v += n === 'n' ? '\n' : n === '"' ? '"' : n === '\\' ? '\\' : `\\${n ?? ''}`;
        i += 2;
        continue;
      }
      v += c;
      i++;
    }
    i++; // closing quote
    if (m[0] in labels) throw new Error(`duplicate label ${m[0]} in: ${line}`);
    labels[m[0]] = v;
  }
}

export function parsePrometheusText(text: string): Exposition {
  const families = new Map<string, Family>();
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\s+(.*))?$/.exec(line);
      if (!m) continue; // other comments are allowed
      const name = m[2]!;
      const f = families.get(name) ?? { name, type: 'untyped' as const, help: '' };
      if (m[1] === 'HELP') f.help = m[3] ?? '';
      else {
        const t = m[3];
        if (t !== 'counter' && t !== 'gauge' && t !== 'histogram' && t !== 'summary' && t !== 'untyped') throw new Error(`bad TYPE in: ${line}`);
        f.type = t;
      }
      families.set(name, f);
      continue;
    }
    const nm = NAME.exec(line);
    if (!nm) throw new Error(`bad sample line: ${line}`);
    let rest = line.slice(nm[0].length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    const parts = rest.trim().split(/\s+/);
    if (parts.length < 1 || parts.length > 2) throw new Error(`bad sample line: ${line}`);
    samples.push({ name: nm[0], labels, value: parseValue(parts[0]!, line) });
  }
  return { families, samples };
}

/** Samples of one series name whose labels include `match`. */
export function select(e: Exposition, name: string, match: Record<string, string> = {}): Sample[] {
  return e.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/** Sum of the values of select(). */
export function sumOf(e: Exposition, name: string, match: Record<string, string> = {}): number {
  return select(e, name, match).reduce((a, s) => a + s.value, 0);
}

/** Every metric name a query may use against this exposition (histogram/summary series included). */
export function metricNames(e: Exposition): Set<string> {
  const out = new Set<string>();
  for (const s of e.samples) out.add(s.name);
  for (const f of e.families.values()) {
    out.add(f.name);
    if (f.type === 'histogram') for (const suf of ['_bucket', '_sum', '_count']) out.add(f.name + suf);
    if (f.type === 'summary') for (const suf of ['_sum', '_count']) out.add(f.name + suf);
  }
  return out;
}
