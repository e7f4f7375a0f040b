/**
 * The steering benchmark's figures and rules, as pure functions: one markdown table of every
 * run (so a run pastes into docs/benchmarks.md as it is) and the target for /v1/locate —
 * at least 0.35x the req/s of nginx doing bare steering in the same run, with p99 under 5 ms.
 */
import { fmt, table } from '../edge/report.js';
import type { LoadResult } from '../edge/load.js';
import { CLIENT_BOUND_SHARE, type Met } from '../edge/verdicts.js';

export type SteeringServer = 'ReelCDN' | 'nginx' | 'node:http';

export interface SteeringMeasured {
  server: SteeringServer;
  workload: string;
  load: LoadResult;
  /** CPU time of the server process per answer during the measured run. */
  cpuUsPerAnswer: number;
  /** Body bytes of one answer (the first one, read before the run). */
  bodyBytes: number;
}

/** The target: ReelCDN's /v1/locate req/s ≥ this × nginx's, p99 below LOCATE_P99_MS. */
export const LOCATE_MIN_RATIO = 0.35;
export const LOCATE_P99_MS = 5;

export interface SteeringVerdict {
  rule: string;
  value: string;
  needed: string;
  met: Met;
  /** A figure in it is above CLIENT_BOUND_SHARE of the client's ceiling. */
  clientBound: boolean;
  /**
   * nginx's CPU per answer over ReelCDN's: the req/s ratio each would reach with a core to
   * itself, which survives a busy machine and a client-bound nginx (the req/s ratio does not).
   */
  cpuRatio?: number;
}

/**
 * Rounds of one server's measured runs as one figure: answers and seconds summed (req/s over
 * the whole), CPU per answer over all answers, p50 and p99 the medians of the rounds (a round landing
 * on someone else's burst moves neither). Rounds alternate between the servers compared, so
 * whatever else the machine does smears over both.
 */
export function combineRounds(rounds: readonly SteeringMeasured[]): SteeringMeasured {
  if (rounds.length === 0) throw new Error('no rounds to combine');
  if (rounds.length === 1) return rounds[0]!;
  const sum = (f: (m: SteeringMeasured) => number) => rounds.reduce((a, m) => a + f(m), 0);
  const median = (f: (m: SteeringMeasured) => number) => {
    const v = rounds.map(f).sort((a, b) => a - b);
    return v.length % 2 === 1 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
  };
  const requests = sum((m) => m.load.requests);
  const seconds = sum((m) => m.load.seconds);
  const cpuSeconds = sum((m) => (m.cpuUsPerAnswer * m.load.requests) / 1e6);
  const clientCpu = rounds.every((m) => m.load.clientCpuSeconds !== undefined) ? sum((m) => m.load.clientCpuSeconds!) : undefined;
  const first = rounds[0]!;
  return {
    server: first.server,
    workload: first.workload,
    bodyBytes: first.bodyBytes,
    cpuUsPerAnswer: requests > 0 ? (cpuSeconds * 1e6) / requests : 0,
    load: {
      requests,
      seconds,
      reqPerSec: seconds > 0 ? requests / seconds : 0,
      bytesPerSec: seconds > 0 ? sum((m) => m.load.bytesPerSec * m.load.seconds) / seconds : 0,
      p50Ms: median((m) => m.load.p50Ms),
      p99Ms: median((m) => m.load.p99Ms),
      errors: sum((m) => m.load.errors),
      non2xx: sum((m) => m.load.non2xx),
      ...(clientCpu === undefined ? {} : { clientCpuSeconds: clientCpu }),
    },
  };
}

/** The client's best rate against the bare server for a workload (before or after the servers). */
export function ceilingOf(results: readonly SteeringMeasured[], workload: string): number | undefined {
  const c = results.filter((m) => m.server === 'node:http' && m.workload === workload).map((m) => m.load.reqPerSec);
  return c.length > 0 ? Math.max(...c) : undefined;
}

export function isClientBound(m: SteeringMeasured, results: readonly SteeringMeasured[]): boolean {
  const c = ceilingOf(results, m.workload);
  return m.server !== 'node:http' && c !== undefined && c > 0 && m.load.reqPerSec > CLIENT_BOUND_SHARE * c;
}

function find(results: readonly SteeringMeasured[], server: SteeringServer, workload: string): SteeringMeasured | undefined {
  return results.find((m) => m.server === server && m.workload === workload);
}

export function locateVerdicts(results: readonly SteeringMeasured[]): SteeringVerdict[] {
  const reel = find(results, 'ReelCDN', 'locate');
  const nginx = find(results, 'nginx', 'locate');
  const out: SteeringVerdict[] = [];
  const ratio = reel && nginx && nginx.load.reqPerSec > 0 ? reel.load.reqPerSec / nginx.load.reqPerSec : undefined;
  out.push({
    rule: `locate >= ${LOCATE_MIN_RATIO.toFixed(2)}x nginx`,
    value: fmt.ratio(ratio),
    needed: `${LOCATE_MIN_RATIO.toFixed(2)}x`,
    met: ratio === undefined ? 'n/a' : ratio >= LOCATE_MIN_RATIO ? 'yes' : 'NO',
    clientBound: [reel, nginx].some((m) => m !== undefined && isClientBound(m, results)),
    cpuRatio: reel && nginx && reel.cpuUsPerAnswer > 0 && nginx.cpuUsPerAnswer > 0 ? nginx.cpuUsPerAnswer / reel.cpuUsPerAnswer : undefined,
  });
  out.push({
    rule: `locate p99 < ${LOCATE_P99_MS} ms`,
    value: reel ? `${fmt.ms(reel.load.p99Ms)} ms` : '-',
    needed: `< ${LOCATE_P99_MS} ms`,
    met: reel === undefined ? 'n/a' : reel.load.p99Ms < LOCATE_P99_MS ? 'yes' : 'NO',
    clientBound: false,
  });
  return out;
}

/** Every run: req/s, latency, the server's CPU per answer, its share of the ceiling and of nginx. */
export function steeringTable(results: readonly SteeringMeasured[]): string {
  const rows = [['workload', 'server', 'req/s', 'p50 ms', 'p99 ms', 'server CPU µs/answer', 'body B', 'client CPU', 'errors/non-2xx', 'of ceiling', 'vs nginx', 'client-bound?']];
  for (const m of results) {
    const l = m.load;
    const ceiling = ceilingOf(results, m.workload);
    const nginx = find(results, 'nginx', m.workload);
    rows.push([
      m.workload,
      m.server,
      fmt.rps(l.reqPerSec),
      fmt.ms(l.p50Ms),
      fmt.ms(l.p99Ms),
      fmt.rps(m.cpuUsPerAnswer),
      String(m.bodyBytes),
      l.clientCpuSeconds !== undefined && l.seconds > 0 ? fmt.pct(l.clientCpuSeconds / l.seconds) : '-',
      `${l.errors}/${l.non2xx}`,
      m.server === 'node:http' || ceiling === undefined ? '-' : fmt.pct(l.reqPerSec / ceiling),
      m.server === 'ReelCDN' && nginx ? fmt.ratio(l.reqPerSec / nginx.load.reqPerSec) : '-',
      m.server === 'node:http' ? 'ceiling' : isClientBound(m, results) ? 'YES' : 'no',
    ]);
  }
  return table(rows);
}

export function steeringVerdictTable(verdicts: readonly SteeringVerdict[]): string {
  const rows = [['target', 'ReelCDN', 'needed', 'met?', 'by CPU per answer']];
  for (const v of verdicts) {
    rows.push([v.rule, v.value, v.needed, v.clientBound && v.met !== 'n/a' ? `${v.met} (client-bound)` : v.met, v.cpuRatio === undefined ? '-' : fmt.ratio(v.cpuRatio)]);
  }
  return table(rows);
}
