/**
 * The edge benchmark's rules, as pure functions of its figures: which figures the client (not
 * the server) limited, the req/s ratios against the targets, and the memory rule.
 */

/** A server's figure above this share of the client's ceiling may be the client's limit. */
export const CLIENT_BOUND_SHARE = 0.7;
/** RSS a node may hold beyond `memoryBytes`, per worker process. */
export const RSS_ALLOWANCE_PER_WORKER = 150 * 1024 * 1024;

export type ServerName = 'ReelCDN' | 'nginx' | 'Varnish' | 'Varnish-file' | 'node:http';

/** One measured run: a server, a workload, a worker count. */
export interface Figure {
  server: ServerName;
  workload: string;
  workers: number;
  reqPerSec: number;
  /** The server's CPU per answer in that run (µs), when measured. */
  cpuUsPerAnswer?: number;
}

/** What the client reached against the bare node:http server, per workload and worker count. */
export interface Ceiling {
  workload: string;
  workers: number;
  reqPerSec: number;
}

export function ceilingFor(ceilings: Ceiling[], workload: string, workers: number): number | undefined {
  return ceilings.find((c) => c.workload === workload && c.workers === workers)?.reqPerSec;
}

/** True when a figure is above CLIENT_BOUND_SHARE of the client's ceiling for that run. */
export function isClientBound(reqPerSec: number, ceiling: number | undefined): boolean {
  return ceiling !== undefined && ceiling > 0 && reqPerSec > CLIENT_BOUND_SHARE * ceiling;
}

export interface TargetRule {
  workload: string;
  vs: ServerName;
  min: number;
}

/** The targets on one core each: ReelCDN req/s ≥ min × the peer's req/s in the same run. */
export const TARGET_RULES: readonly TargetRule[] = [
  { workload: 'hot-16k', vs: 'nginx', min: 1.0 },
  { workload: 'hot-2m', vs: 'Varnish', min: 1.2 },
  { workload: 'disk-tier', vs: 'Varnish-file', min: 1.0 },
  { workload: 'disk-tier', vs: 'nginx', min: 0.6 },
  { workload: 'cold', vs: 'nginx', min: 0.8 },
  // Over HTTPS (TLS 1.3, AES-128-GCM, the same certificate): Varnish has no TLS.
  { workload: 'tls-hot-16k', vs: 'nginx', min: 0.9 },
  { workload: 'tls-hot-2m', vs: 'nginx', min: 0.9 },
];

/** Workloads where the edge at 2 workers must keep (at least) its 1-core ratio to nginx. */
export const WORKERS_RULE_WORKLOADS: readonly string[] = ['hot-16k', 'disk-tier'];

export type Met = 'yes' | 'NO' | 'n/a';

export interface Verdict {
  /** e.g. "hot-16k >= 1.0x nginx". */
  rule: string;
  ratio?: number;
  /** What the ratio must reach. */
  min?: number;
  met: Met;
  /** A figure in the ratio is client-bound: the ratio says less than it seems. */
  clientBound: boolean;
  /**
   * The peer's CPU per answer over ReelCDN's: the req/s ratio each would reach with a whole core
   * to itself. It survives a busy machine and a client-bound run, which the req/s ratio does not.
   */
  cpuRatio?: number;
}

function figure(figures: Figure[], server: ServerName, workload: string, workers: number): Figure | undefined {
  return figures.find((f) => f.server === server && f.workload === workload && f.workers === workers);
}

function ratioOf(a: Figure | undefined, b: Figure | undefined): number | undefined {
  return a && b && b.reqPerSec > 0 ? a.reqPerSec / b.reqPerSec : undefined;
}

/** `peer`'s CPU per answer over `reel`'s (both measured), else undefined. */
function cpuRatioOf(reel: Figure | undefined, peer: Figure | undefined): number | undefined {
  const r = reel?.cpuUsPerAnswer;
  const p = peer?.cpuUsPerAnswer;
  return r !== undefined && p !== undefined && r > 0 && p > 0 ? p / r : undefined;
}

function bound(f: Figure | undefined, ceilings: Ceiling[]): boolean {
  return f !== undefined && isClientBound(f.reqPerSec, ceilingFor(ceilings, f.workload, f.workers));
}

function met(ratio: number | undefined, min: number | undefined): Met {
  if (ratio === undefined || min === undefined) return 'n/a';
  return ratio >= min ? 'yes' : 'NO';
}

/** The 1-core targets, in TARGET_RULES order, for the workloads that ran. */
export function targetVerdicts(figures: Figure[], ceilings: Ceiling[]): Verdict[] {
  const ran = new Set(figures.filter((f) => f.workers === 1).map((f) => f.workload));
  return TARGET_RULES.filter((r) => ran.has(r.workload)).map((r) => {
    const reel = figure(figures, 'ReelCDN', r.workload, 1);
    const peer = figure(figures, r.vs, r.workload, 1);
    const ratio = ratioOf(reel, peer);
    return {
      rule: `${r.workload} >= ${r.min.toFixed(1)}x ${r.vs}`,
      ratio,
      min: r.min,
      met: met(ratio, r.min),
      clientBound: bound(reel, ceilings) || bound(peer, ceilings),
      cpuRatio: cpuRatioOf(reel, peer),
    };
  });
}

/** ReelCDN/nginx at `workers` must be at least ReelCDN/nginx on one core, same workload. */
export function workersVerdicts(figures: Figure[], ceilings: Ceiling[], workers: number): Verdict[] {
  const ran = new Set(figures.filter((f) => f.workers === workers).map((f) => f.workload));
  return WORKERS_RULE_WORKLOADS.filter((w) => ran.has(w)).map((w) => {
    const reelN = figure(figures, 'ReelCDN', w, workers);
    const nginxN = figure(figures, 'nginx', w, workers);
    const reel1 = figure(figures, 'ReelCDN', w, 1);
    const nginx1 = figure(figures, 'nginx', w, 1);
    const ratio = ratioOf(reelN, nginxN);
    const min = ratioOf(reel1, nginx1);
    return {
      rule: `${w} x${workers} workers: ReelCDN/nginx >= 1-core ratio`,
      ratio,
      min,
      met: met(ratio, min),
      clientBound: [reelN, nginxN, reel1, nginx1].some((f) => bound(f, ceilings)),
      cpuRatio: cpuRatioOf(reelN, nginxN),
    };
  });
}

/** The most a node of `workers` processes may hold: memoryBytes + 150 MiB per worker. */
export function rssLimit(memoryBytes: number, workers: number): number {
  return memoryBytes + RSS_ALLOWANCE_PER_WORKER * Math.max(1, workers);
}

export function rssVerdict(peakBytes: number, memoryBytes: number, workers: number): Met {
  if (!(peakBytes > 0)) return 'n/a';
  return peakBytes <= rssLimit(memoryBytes, workers) ? 'yes' : 'NO';
}

/** A verdict as printed: "yes", "NO", "n/a", with "(client-bound)" when it applies. */
export function verdictText(v: Pick<Verdict, 'met' | 'clientBound'>): string {
  return v.clientBound && v.met !== 'n/a' ? `${v.met} (client-bound)` : v.met;
}
