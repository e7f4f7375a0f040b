import type { EdgeState } from './health.js';

/**
 * The dashboard's last hour, kept in steering's memory: one point per sample, derived from
 * two consecutive samples of cumulative counters (edge /health byTier, origin bytes served).
 * Pure: time comes in with each sample, nothing here reads a clock, a socket or a file.
 */

export const TIERS = ['HIT-MEM', 'HIT-DISK', 'HIT-FILL', 'MISS'] as const;
export type TierName = (typeof TIERS)[number];
/** Answers (200/206) and body bytes per tier since the edge started. */
export type TierCounts = Record<TierName, { requests: number; bytes: number }>;

export interface EdgeSample {
  id: string;
  isp: string;
  state: EdgeState;
  /** From the edge's last good report; undefined before the first one. */
  tiers?: TierCounts;
  /** The edge's own 10 s rate (from the same report); 0 while it is not up. */
  bytesPerSec: number;
}

export interface ClusterSample {
  /** Wall clock ms: where the point goes on the chart. */
  at: number;
  /**
   * Monotonic clock ms: rates and the window are measured on it, so a wall clock stepped back
   * does not stop the history for as long. Defaults to `at`.
   */
  mono?: number;
  edges: EdgeSample[];
  /** Origin's bytes served since it started, undefined when the origin could not be polled. */
  originBytes?: number;
}

/** Hit ratios of one interval; null when nothing was answered in it (a gap, not a zero). */
export interface Ratios {
  requests: number | null;
  bytes: number | null;
}

export interface HistoryPoint {
  at: number;
  edges: Record<string, Ratios & { bytesPerSec: number; up: 0 | 1 }>;
  isps: Record<string, Ratios>;
  cluster: Ratios;
  /** Origin egress over the interval, bytes/s; null when unknown (origin unreachable, restarted). */
  originBytesPerSec: number | null;
}

/** Column-oriented history, the shape uPlot draws (`t` in unix seconds). */
export interface HistoryColumns {
  t: number[];
  edges: Record<string, { hitRequests: (number | null)[]; hitBytes: (number | null)[]; bytesPerSec: number[]; up: number[] }>;
  isps: Record<string, { hitRequests: (number | null)[]; hitBytes: (number | null)[] }>;
  cluster: { hitRequests: (number | null)[]; hitBytes: (number | null)[] };
  originBytesPerSec: (number | null)[];
}

export function emptyTiers(): TierCounts {
  return Object.fromEntries(TIERS.map((t) => [t, { requests: 0, bytes: 0 }])) as TierCounts;
}

/** Adds b into a (in place) and returns a. */
export function addTiers(a: TierCounts, b: TierCounts): TierCounts {
  for (const t of TIERS) {
    a[t].requests += b[t].requests;
    a[t].bytes += b[t].bytes;
  }
  return a;
}

/** Hit ratios (everything but misses, over all) of cumulative or interval counts. */
export function ratios(c: TierCounts): Ratios {
  let req = 0;
  let bytes = 0;
  for (const t of TIERS) {
    req += c[t].requests;
    bytes += c[t].bytes;
  }
  return {
    requests: req === 0 ? null : (req - c.MISS.requests) / req,
    bytes: bytes === 0 ? null : (bytes - c.MISS.bytes) / bytes,
  };
}

/** b − a, or undefined when a counter went backwards (the edge restarted). */
function delta(a: TierCounts, b: TierCounts): TierCounts | undefined {
  const d = emptyTiers();
  for (const t of TIERS) {
    d[t].requests = b[t].requests - a[t].requests;
    d[t].bytes = b[t].bytes - a[t].bytes;
    if (d[t].requests < 0 || d[t].bytes < 0) return undefined;
  }
  return d;
}

/** Reads a byTier object from an untrusted /health report. */
export function asTierCounts(v: unknown): TierCounts | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const out = emptyTiers();
  for (const t of TIERS) {
    const x = (v as Record<string, unknown>)[t] as { requests?: unknown; bytes?: unknown } | undefined;
    if (t === 'HIT-FILL' && x === undefined) continue; // an edge from before HIT-FILL
    if (!x || typeof x.requests !== 'number' || typeof x.bytes !== 'number') return undefined;
    out[t] = { requests: x.requests, bytes: x.bytes };
  }
  return out;
}

export interface DashboardHistoryOptions {
  /** How far back points are kept (ms). Default one hour. */
  windowMs?: number;
  /** Hard cap on points whatever the sampling rate. Default 7200. */
  maxPoints?: number;
}

/** A bounded ring of points, oldest first. */
export class DashboardHistory {
  private readonly windowMs: number;
  private readonly maxPoints: number;
  private readonly points: HistoryPoint[] = [];
  /** Each point's monotonic time, in step with `points`. */
  private readonly monos: number[] = [];
  private last: ClusterSample | undefined;

  constructor(opts: DashboardHistoryOptions = {}) {
    this.windowMs = opts.windowMs ?? 3_600_000;
    this.maxPoints = opts.maxPoints ?? 7200;
  }

  get size(): number {
    return this.points.length;
  }

  /** Feeds one sample; from the second on, appends the point of the interval since the previous one. */
  add(sample: ClusterSample): HistoryPoint | undefined {
    const prev = this.last;
    this.last = sample;
    if (!prev) return undefined;
    const t = sample.mono ?? sample.at;
    const tPrev = prev.mono ?? prev.at;
    if (t <= tPrev) return undefined;
    const secs = (t - tPrev) / 1000;
    const prevById = new Map(prev.edges.map((e) => [e.id, e]));
    const edges: HistoryPoint['edges'] = {};
    const ispSums = new Map<string, TierCounts>();
    const cluster = emptyTiers();
    for (const e of sample.edges) {
      const before = prevById.get(e.id);
      const d = e.tiers && before?.tiers ? delta(before.tiers, e.tiers) : undefined;
      const r = d ? ratios(d) : { requests: null, bytes: null };
      const up = e.state === 'up' || e.state === 'suspect' ? 1 : 0;
      edges[e.id] = { ...r, bytesPerSec: up ? e.bytesPerSec : 0, up };
      if (d) {
        addTiers(ispSums.get(e.isp) ?? ispSums.set(e.isp, emptyTiers()).get(e.isp)!, d);
        addTiers(cluster, d);
      }
    }
    const isps: HistoryPoint['isps'] = {};
    for (const e of sample.edges) isps[e.isp] ??= ispSums.has(e.isp) ? ratios(ispSums.get(e.isp)!) : { requests: null, bytes: null };
    const originDelta = sample.originBytes !== undefined && prev.originBytes !== undefined ? sample.originBytes - prev.originBytes : undefined;
    const point: HistoryPoint = {
      at: sample.at,
      edges,
      isps,
      cluster: ratios(cluster),
      originBytesPerSec: originDelta === undefined || originDelta < 0 ? null : originDelta / secs,
    };
    this.points.push(point);
    this.monos.push(t);
    const oldest = t - this.windowMs;
    let drop = 0;
    while (drop < this.points.length && (this.monos[drop]! < oldest || this.points.length - drop > this.maxPoints)) drop++;
    if (drop > 0) {
      this.points.splice(0, drop);
      this.monos.splice(0, drop);
    }
    return point;
  }

  /** Points strictly after `sinceMs` (all when absent), as columns. */
  columns(sinceMs?: number): HistoryColumns {
    const pts = sinceMs === undefined ? this.points : this.points.filter((p) => p.at > sinceMs);
    const edgeIds = new Set<string>();
    const ispIds = new Set<string>();
    for (const p of pts) {
      for (const id of Object.keys(p.edges)) edgeIds.add(id);
      for (const id of Object.keys(p.isps)) ispIds.add(id);
    }
    const out: HistoryColumns = {
      t: pts.map((p) => p.at / 1000),
      edges: {},
      isps: {},
      cluster: { hitRequests: pts.map((p) => p.cluster.requests), hitBytes: pts.map((p) => p.cluster.bytes) },
      originBytesPerSec: pts.map((p) => p.originBytesPerSec),
    };
    for (const id of edgeIds) {
      out.edges[id] = {
        hitRequests: pts.map((p) => p.edges[id]?.requests ?? null),
        hitBytes: pts.map((p) => p.edges[id]?.bytes ?? null),
        bytesPerSec: pts.map((p) => p.edges[id]?.bytesPerSec ?? 0),
        up: pts.map((p) => p.edges[id]?.up ?? 0),
      };
    }
    for (const id of ispIds) {
      out.isps[id] = { hitRequests: pts.map((p) => p.isps[id]?.requests ?? null), hitBytes: pts.map((p) => p.isps[id]?.bytes ?? null) };
    }
    return out;
  }
}
