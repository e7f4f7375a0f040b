import { type QoeBlock, STARTUP_BOUNDS_MS } from '../edge/qoe.js';

/**
 * What players experienced, per ISP and per edge, over the dashboard's last hour: startup time
 * p50/p90, rebuffer ratio, average bitrate and buffer length, sessions. Built from the cumulative
 * `qoe` block every edge's /health carries (docs/contract.md; src/edge/qoe.ts counts it from
 * CMCD), as deltas between two samples, like the tier counters of dashboard-history.ts.
 * Pure: time comes in with each sample (monotonic ms); nothing here reads a clock or a socket.
 */

/** The edges' fixed startup buckets (ms, upper bounds; a last, open bucket is over 15 s): one definition, the edge's. */
export { STARTUP_BOUNDS_MS };

/** An edge's cumulative CMCD counters (its /health `qoe` block without the bounds, which are fixed), or the difference of two. */
export type QoeCounts = Omit<QoeBlock, 'startupBoundsMs'>;

const SCALARS = ['sessions', 'requests', 'mediaRequests', 'starved', 'brKbpsSum', 'brCount', 'blMsSum', 'blCount'] as const;

export function emptyQoe(): QoeCounts {
  return { sessions: 0, requests: 0, mediaRequests: 0, starved: 0, brKbpsSum: 0, brCount: 0, blMsSum: 0, blCount: 0, startupCounts: new Array<number>(STARTUP_BOUNDS_MS.length + 1).fill(0) };
}

const countable = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/**
 * Reads the `qoe` block of an untrusted /health report. Undefined when absent (an edge from
 * before CMCD) or not the contract's shape — other buckets could not be added to ours.
 */
export function asQoeCounts(v: unknown): QoeCounts | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const out = emptyQoe();
  for (const k of SCALARS) {
    const x = o[k];
    if (!countable(x)) return undefined;
    out[k] = x;
  }
  const bounds = o.startupBoundsMs;
  const counts = o.startupCounts;
  if (!Array.isArray(bounds) || bounds.length !== STARTUP_BOUNDS_MS.length || bounds.some((b, i) => b !== STARTUP_BOUNDS_MS[i])) return undefined;
  if (!Array.isArray(counts) || counts.length !== STARTUP_BOUNDS_MS.length + 1 || !counts.every(countable)) return undefined;
  out.startupCounts = counts.slice() as number[];
  return out;
}

/** Adds b into a (in place) and returns a. */
export function addQoe(a: QoeCounts, b: QoeCounts): QoeCounts {
  for (const k of SCALARS) a[k] += b[k];
  for (let i = 0; i < a.startupCounts.length; i++) a.startupCounts[i]! += b.startupCounts[i] ?? 0;
  return a;
}

/** b − a, or undefined when any counter went down (the edge restarted in between). */
export function qoeDelta(a: QoeCounts, b: QoeCounts): QoeCounts | undefined {
  const d = emptyQoe();
  for (const k of SCALARS) {
    d[k] = b[k] - a[k];
    if (d[k] < 0) return undefined;
  }
  for (let i = 0; i < d.startupCounts.length; i++) {
    d.startupCounts[i] = b.startupCounts[i]! - a.startupCounts[i]!;
    if (d.startupCounts[i]! < 0) return undefined;
  }
  return d;
}

/**
 * The q-quantile (0 < q ≤ 1) of startups counted per bucket, interpolated linearly inside its
 * bucket as Prometheus' histogram_quantile does (the first bucket starts at 0), so the page and
 * Grafana agree. A quantile in the open last bucket is its lower bound (15000 ms): "at least".
 * Null when nothing was counted.
 */
export function bucketQuantile(counts: readonly number[], bounds: readonly number[], q: number): number | null {
  let total = 0;
  for (const c of counts) total += c;
  if (total === 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (c > 0 && below + c >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1]!;
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      return lower + ((bounds[i]! - lower) * (rank - below)) / c;
    }
    below += c;
  }
  return bounds[bounds.length - 1]!;
}

/** The figures the dashboard shows for an ISP or an edge; null ones had nothing to say. */
export interface QoeSummary {
  /** Sessions that started (first seen) in the window. */
  sessions: number;
  /** Requests carrying CMCD, and of them media segments. */
  requests: number;
  mediaRequests: number;
  /** Sessions whose startup ended in the window. */
  startups: number;
  startupP50Ms: number | null;
  startupP90Ms: number | null;
  /** Media requests sent with a starved buffer (bs) over media requests. */
  rebufferRatio: number | null;
  avgBitrateKbps: number | null;
  avgBufferMs: number | null;
}

export function summarize(c: QoeCounts): QoeSummary {
  let startups = 0;
  for (const n of c.startupCounts) startups += n;
  return {
    sessions: c.sessions,
    requests: c.requests,
    mediaRequests: c.mediaRequests,
    startups,
    startupP50Ms: bucketQuantile(c.startupCounts, STARTUP_BOUNDS_MS, 0.5),
    startupP90Ms: bucketQuantile(c.startupCounts, STARTUP_BOUNDS_MS, 0.9),
    rebufferRatio: c.mediaRequests === 0 ? null : c.starved / c.mediaRequests,
    avgBitrateKbps: c.brCount === 0 ? null : c.brKbpsSum / c.brCount,
    avgBufferMs: c.blCount === 0 ? null : c.blMsSum / c.blCount,
  };
}

/** One edge as sampled: its counters from its last good report (undefined: none, or an old edge). */
export interface QoeEdgeSample {
  id: string;
  isp: string;
  qoe?: QoeCounts;
  /** The report's uptime: one that went back is a restart even if the counters have already passed their old values. */
  uptimeSec?: number;
}

export interface QoeWindow {
  windowMs: number;
  startupBoundsMs: readonly number[];
  /** Every ISP and edge of the cluster; `qoe` null when the window holds no CMCD request of it. */
  isps: { id: string; edges: string[]; qoe: QoeSummary | null }[];
  edges: { id: string; isp: string; qoe: QoeSummary | null }[];
}

export interface QoeHistoryOptions {
  /** How far back intervals count (ms). Default one hour. */
  windowMs?: number;
  /** Hard cap on intervals kept whatever the sampling rate. Default 7200. */
  maxIntervals?: number;
}

/**
 * The per-interval deltas of every edge's counters over the window, oldest first. An interval
 * keeps only the edges that saw CMCD in it, so an idle cluster costs nothing but the timestamps.
 */
export class QoeHistory {
  private readonly windowMs: number;
  private readonly maxIntervals: number;
  /** Monotonic end of each interval and the edges' deltas in it. */
  private readonly intervals: { end: number; deltas: Map<string, QoeCounts> }[] = [];
  private last: { mono: number; edges: Map<string, QoeEdgeSample> } | undefined;

  constructor(opts: QoeHistoryOptions = {}) {
    this.windowMs = opts.windowMs ?? 3_600_000;
    this.maxIntervals = opts.maxIntervals ?? 7200;
  }

  get size(): number {
    return this.intervals.length;
  }

  /**
   * Feeds one sample (monotonic ms). From the second on, each edge's counters minus its previous
   * ones make the interval's delta. Dropped: an edge restarted in between (a counter or its
   * uptime went down — its new counters are the baseline from now on), an edge without counters
   * either side, and an interval longer than the window (a steering that could not sample for an
   * hour cannot say when in it those requests came).
   */
  add(mono: number, edges: readonly QoeEdgeSample[]): void {
    const prev = this.last;
    if (prev !== undefined && mono <= prev.mono) return;
    this.last = { mono, edges: new Map(edges.map((e) => [e.id, e])) };
    if (prev === undefined) return;
    const deltas = new Map<string, QoeCounts>();
    if (mono - prev.mono <= this.windowMs) {
      for (const e of edges) {
        const before = prev.edges.get(e.id);
        if (e.qoe === undefined || before?.qoe === undefined) continue;
        if (e.uptimeSec !== undefined && before.uptimeSec !== undefined && e.uptimeSec < before.uptimeSec) continue;
        const d = qoeDelta(before.qoe, e.qoe);
        if (d !== undefined && d.requests > 0) deltas.set(e.id, d);
      }
    }
    this.intervals.push({ end: mono, deltas });
    this.trim(mono);
  }

  private trim(now: number): void {
    const oldest = now - this.windowMs;
    let drop = 0;
    while (drop < this.intervals.length && (this.intervals[drop]!.end <= oldest || this.intervals.length - drop > this.maxIntervals)) drop++;
    if (drop > 0) this.intervals.splice(0, drop);
  }

  /**
   * Sums per edge and per ISP over the intervals that ended in the last window before `now`
   * (monotonic ms). `edges` is the cluster as configured now: an edge a reload removed is not
   * shown, and one with nothing in the window shows null.
   */
  window(now: number, edges: readonly { id: string; isp: string }[]): QoeWindow {
    const oldest = now - this.windowMs;
    const perEdge = new Map<string, QoeCounts>();
    for (const iv of this.intervals) {
      if (iv.end <= oldest || iv.end > now) continue;
      for (const [id, d] of iv.deltas) addQoe(perEdge.get(id) ?? perEdge.set(id, emptyQoe()).get(id)!, d);
    }
    const perIsp = new Map<string, { edges: string[]; sum: QoeCounts | undefined }>();
    const outEdges: QoeWindow['edges'] = [];
    for (const e of edges) {
      const isp = perIsp.get(e.isp) ?? perIsp.set(e.isp, { edges: [], sum: undefined }).get(e.isp)!;
      isp.edges.push(e.id);
      const c = perEdge.get(e.id);
      if (c) isp.sum = addQoe(isp.sum ?? emptyQoe(), c);
      outEdges.push({ id: e.id, isp: e.isp, qoe: c ? summarize(c) : null });
    }
    return {
      windowMs: this.windowMs,
      startupBoundsMs: STARTUP_BOUNDS_MS,
      isps: [...perIsp].map(([id, v]) => ({ id, edges: v.edges, qoe: v.sum ? summarize(v.sum) : null })),
      edges: outEdges,
    };
  }
}
