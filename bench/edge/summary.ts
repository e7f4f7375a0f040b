/**
 * Several bench:edge runs (their BENCH_JSON files) as one: the median of each figure over the
 * runs, with its range, the targets judged on the medians, and the TLS cost per MiB of each run
 * (median and range). On a shared machine one run's figures swing by a third; the median of a
 * few runs, and how far apart they are, is what can be written down.
 *
 *   node dist/bench/edge/summary.js run1.json run2.json ...
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fmt, table } from './report.js';
import { type RunFigures, tlsCosts } from './tls-cost.js';
import { type Figure, type ServerName, targetVerdicts, verdictText } from './verdicts.js';

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A figure over several runs: its median and the lowest and highest run. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function spread(xs: number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

export interface SummaryRow {
  server: string;
  workload: string;
  workers: number;
  reqPerSec: Spread;
  cpuUsPerAnswer: Spread;
  bytesPerAnswer: number;
}

/** One row per (workload, workers, server) seen in any run, in the order first seen. */
export function summarize(runs: RunFigures[][]): SummaryRow[] {
  const groups = new Map<string, RunFigures[]>();
  for (const run of runs) {
    for (const r of run) {
      const k = `${r.workload}\u0000${r.workers}\u0000${r.server}`;
      const g = groups.get(k) ?? [];
      g.push(r);
      groups.set(k, g);
    }
  }
  return [...groups.values()].map((g) => ({
    server: g[0]!.server,
    workload: g[0]!.workload,
    workers: g[0]!.workers,
    reqPerSec: spread(g.map((r) => r.load.reqPerSec)),
    cpuUsPerAnswer: spread(g.map((r) => r.cpuUsPerAnswer)),
    bytesPerAnswer: median(g.filter((r) => r.load.reqPerSec > 0).map((r) => r.load.bytesPerSec / r.load.reqPerSec)),
  }));
}

/** The TLS cost per MiB of each run, per (server, workload): median and range over the runs. */
export function tlsCostSpread(runs: RunFigures[][]): { server: string; workload: string; usPerMiB: Spread; extraUs: Spread }[] {
  const by = new Map<string, { server: string; workload: string; perMiB: number[]; extra: number[] }>();
  for (const run of runs) {
    for (const c of tlsCosts(run)) {
      const k = `${c.workload}\u0000${c.server}`;
      const e = by.get(k) ?? { server: c.server, workload: c.workload, perMiB: [], extra: [] };
      e.perMiB.push(c.usPerMiB);
      e.extra.push(c.extraUs);
      by.set(k, e);
    }
  }
  return [...by.values()].map((e) => ({ server: e.server, workload: e.workload, usPerMiB: spread(e.perMiB), extraUs: spread(e.extra) }));
}

const range = (s: Spread, f: (n: number) => string) => (s.n > 1 ? `${f(s.median)} (${f(s.min)}-${f(s.max)})` : f(s.median));

function main(files: string[]): void {
  const runs = files.map((f) => (JSON.parse(readFileSync(f, 'utf8')) as { results: RunFigures[] }).results);
  const rows = summarize(runs);
  const say = (s: string) => process.stdout.write(`${s}\n`);
  say(`${runs.length} run(s): median (lowest-highest)\n`);
  const t = [['workload', 'server', 'runs', 'req/s', 'server CPU µs/answer']];
  for (const r of rows) {
    t.push([r.workers > 1 ? `workers-${r.workers} ${r.workload}` : r.workload, r.server, String(r.cpuUsPerAnswer.n), range(r.reqPerSec, fmt.rps), range(r.cpuUsPerAnswer, fmt.rps)]);
  }
  say(table(t));
  const figures: Figure[] = rows
    .filter((r) => r.server !== 'node:http')
    .map((r) => ({ server: r.server as ServerName, workload: r.workload, workers: r.workers, reqPerSec: r.reqPerSec.median, cpuUsPerAnswer: r.cpuUsPerAnswer.median }));
  const v = [['target (on the medians)', 'ReelCDN ratio by req/s', 'needed', 'met?', 'ratio by CPU µs/answer']];
  for (const x of targetVerdicts(figures, [])) v.push([x.rule, fmt.ratio(x.ratio), x.min === undefined ? '-' : `${x.min.toFixed(2)}x`, verdictText(x), fmt.ratio(x.cpuRatio)]);
  say(`\n${table(v)}`);
  const costs = tlsCostSpread(runs);
  if (costs.length > 0) {
    const c = [['workload', 'server', 'TLS µs/answer', 'TLS µs per MiB']];
    for (const x of costs) c.push([x.workload, x.server, range(x.extraUs, fmt.rps), range(x.usPerMiB, fmt.rps)]);
    say(`\nTLS cost, each run's own difference (HTTPS minus HTTP CPU per answer):\n\n${table(c)}`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    process.stderr.write('usage: summary RUN.json...  (BENCH_JSON files of bench:edge)\n');
    process.exit(2);
  }
  main(files);
}
