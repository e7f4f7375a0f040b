/**
 * The edge benchmark's printed report: one markdown table of every run, the target verdicts and
 * the memory rule, so a run can be pasted into docs/benchmarks.md as it is.
 */
import type { LoadResult } from './load.js';
import type { TlsCost } from './tls-cost.js';
import { type Ceiling, type Figure, type ServerName, type Verdict, rssLimit, rssVerdict, verdictText } from './verdicts.js';

const MiB = 1024 * 1024;

export interface Measured {
  server: ServerName;
  workload: string;
  workers: number;
  load: LoadResult;
  /** Server CPU time (its whole process tree) per answer during the measured run. */
  cpuUsPerAnswer: number;
  /** Highest sampled RSS of the server's process tree during this workload. */
  peakRss: number;
  clientBound: boolean;
  /** ReelCDN only: answers by tier during the measured run. */
  tiers?: Record<string, number>;
  originRequests: number;
}

/** ReelCDN's highest RSS over its whole life (every workload it served), per worker count. */
export interface EdgeMemory {
  workers: number;
  peakRss: number;
  /** The edge of the HTTPS workloads (its own process, TLS listener). */
  tls?: boolean;
}

export const fmt = {
  rps: (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1)),
  gbs: (n: number) => (n / 1e9).toFixed(2),
  ms: (n: number) => (n >= 10 ? n.toFixed(0) : n.toFixed(1)),
  mib: (n: number) => `${Math.round(n / MiB)}`,
  pct: (n: number) => `${Math.round(n * 100)} %`,
  ratio: (n: number | undefined) => (n === undefined ? '-' : `${n.toFixed(2)}x`),
};

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ')} |`;
  const sep = `|${widths.map((w, c) => (c === 0 ? `-${'-'.repeat(w)}-` : `-${'-'.repeat(w)}:`)).join('|')}|`;
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join('\n');
}

export function runLabel(workload: string, workers: number): string {
  return workers > 1 ? `workers-${workers} ${workload}` : workload;
}

function tiersText(tiers: Record<string, number> | undefined): string {
  return tiers
    ? Object.entries(tiers)
        .filter(([, v]) => v > 0)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')
    : '';
}

/** One line per run, as the bench goes (with its share of the ceiling measured so far). */
export function progressLine(m: Measured, ceiling?: number): string {
  const l = m.load;
  const client = l.clientCpuSeconds !== undefined && l.seconds > 0 ? `  client CPU ${fmt.pct(l.clientCpuSeconds / l.seconds)}` : '';
  const tiers = m.tiers ? ` [${tiersText(m.tiers)}]` : '';
  return (
    `  ${m.server.padEnd(12)} ${fmt.rps(l.reqPerSec).padStart(7)} req/s  ${fmt.gbs(l.bytesPerSec)} GB/s  p50 ${fmt.ms(l.p50Ms)} ms  p99 ${fmt.ms(l.p99Ms)} ms  ` +
    `cpu ${fmt.rps(m.cpuUsPerAnswer)} µs/answer${client}  peak RSS ${fmt.mib(m.peakRss)} MiB  errors ${l.errors} non-2xx ${l.non2xx}  origin reqs ${m.originRequests}` +
    `${m.server === 'node:http' ? '  (ceiling)' : ceiling ? `  ${fmt.pct(l.reqPerSec / ceiling)} of the ceiling` : ''}${tiers}`
  );
}

export function figures(results: Measured[]): Figure[] {
  return results
    .filter((m) => m.server !== 'node:http')
    .map((m) => ({ server: m.server, workload: m.workload, workers: m.workers, reqPerSec: m.load.reqPerSec, cpuUsPerAnswer: m.cpuUsPerAnswer }));
}

export function ceilings(results: Measured[]): Ceiling[] {
  return results.filter((m) => m.server === 'node:http').map((m) => ({ workload: m.workload, workers: m.workers, reqPerSec: m.load.reqPerSec }));
}

export function resultsTable(results: Measured[]): string {
  const rows = [
    ['workload', 'server', 'req/s', 'GB/s', 'p50 ms', 'p99 ms', 'server CPU µs/answer', 'client CPU', 'peak RSS MiB', 'errors/non-2xx', 'origin reqs', 'client-bound?'],
  ];
  for (const m of results) {
    const l = m.load;
    rows.push([
      runLabel(m.workload, m.workers),
      m.server,
      fmt.rps(l.reqPerSec),
      fmt.gbs(l.bytesPerSec),
      fmt.ms(l.p50Ms),
      fmt.ms(l.p99Ms),
      fmt.rps(m.cpuUsPerAnswer),
      l.clientCpuSeconds !== undefined && l.seconds > 0 ? fmt.pct(l.clientCpuSeconds / l.seconds) : '-',
      fmt.mib(m.peakRss),
      `${l.errors}/${l.non2xx}`,
      String(m.originRequests),
      m.server === 'node:http' ? 'ceiling' : m.clientBound ? 'YES' : 'no',
    ]);
  }
  return table(rows);
}

export function verdictTable(verdicts: Verdict[]): string {
  const rows = [['target', 'ReelCDN ratio', 'needed', 'met?', 'ratio by CPU µs/answer']];
  for (const v of verdicts) rows.push([v.rule, fmt.ratio(v.ratio), v.min === undefined ? '-' : `${v.min.toFixed(2)}x`, verdictText(v), fmt.ratio(v.cpuRatio)]);
  return table(rows);
}

export function memoryTable(edges: EdgeMemory[], memoryBytes: number, results: Measured[]): string {
  const rows = [['ReelCDN', 'peak RSS MiB (whole run, process tree)', 'memoryBytes + 150 MiB/worker', 'met?', 'answers by tier']];
  for (const e of edges) {
    const tiers: Record<string, number> = {};
    for (const m of results) {
      if (m.server !== 'ReelCDN' || m.workers !== e.workers || !m.tiers || m.workload.startsWith('tls-') !== (e.tls ?? false)) continue;
      for (const [k, v] of Object.entries(m.tiers)) tiers[k] = (tiers[k] ?? 0) + v;
    }
    rows.push([`${e.workers} worker${e.workers > 1 ? 's' : ''}${e.tls ? ', HTTPS' : ''}`, fmt.mib(e.peakRss), fmt.mib(rssLimit(memoryBytes, e.workers)), rssVerdict(e.peakRss, memoryBytes, e.workers), tiersText(tiers)]);
  }
  return table(rows);
}

/** What TLS added to each server's CPU per answer, per MiB sent (tls-cost.ts). */
export function tlsCostTable(costs: TlsCost[]): string {
  const rows = [['workload', 'server', 'CPU µs/answer http', 'https', 'TLS µs/answer', 'KiB/answer', 'TLS µs per MiB', 'TLS share of CPU', 'MiB/s per core of TLS']];
  for (const c of costs) {
    rows.push([
      c.workload,
      c.server,
      fmt.rps(c.plainCpuUs),
      fmt.rps(c.tlsCpuUs),
      fmt.rps(c.extraUs),
      (c.bytesPerAnswer / 1024).toFixed(1),
      fmt.rps(c.usPerMiB),
      fmt.pct(c.share),
      Number.isFinite(c.mibPerCoreSecond) && c.mibPerCoreSecond > 0 ? fmt.rps(c.mibPerCoreSecond) : '-',
    ]);
  }
  return table(rows);
}
