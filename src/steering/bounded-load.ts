/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup & Zadimoghaddam 2018; HAProxy's
 * `hash-balance-factor`): a title keeps its ring order, but an edge whose load is at or above
 * `balanceFactor` × its ISP's mean takes no new sessions while another edge of the ISP is
 * under that bound. Pure: loads are the edges' latest /health reports, so every steering replica
 * that read the same reports holds the same loads and ranks alike.
 */

/** What an edge's /health says of its load (src/edge/edge-health.ts). */
export interface LoadReport {
  /** Open client connections on its public port. */
  connections: number;
  /** Bytes served per second over the edge's traffic window (absent from old edges: 0). */
  bytesPerSec?: number;
}

/** An edge's load as its latest report gave it. */
export interface EdgeLoad {
  connections: number;
  bytesPerSec: number;
}

/**
 * Below these ISP means a metric says nothing about balance and is not judged: with a handful of
 * connections (a test player, a health check) one edge is "200% of the mean" by accident.
 * 10 connections; 1 MB/s (8 Mbit/s, one or two HD players).
 */
export const MIN_MEAN_CONNECTIONS = 10;
export const MIN_MEAN_BYTES_PER_SEC = 1_000_000;

/** A report's load; what is not a non-negative finite number counts as 0. */
export function loadOf(report: LoadReport): EdgeLoad {
  return { connections: finite(report.connections), bytesPerSec: finite(report.bytesPerSec ?? 0) };
}

function finite(n: number): number {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : 0;
}

/**
 * Every edge's latest load, fed one poll at a time. The latest report only, no history: two
 * replicas then hold the same loads as soon as they have read the same last reports, however
 * many polls each made before (one that started late, or missed a poll, agrees at once). The
 * smoothing is the edge's: bytesPerSec is its 10 s average, and open connections of players
 * change slowly. A one-poll spike of connections sways new sessions for one health interval.
 */
export class LoadTracker {
  private readonly loads = new Map<string, EdgeLoad>();

  /** An edge answered its poll with this report. */
  observe(edgeId: string, report: LoadReport): void {
    this.loads.set(edgeId, loadOf(report));
  }

  /** An edge went down or left the cluster (reload): its load goes with it. */
  forget(edgeId: string): void {
    this.loads.delete(edgeId);
  }

  get(edgeId: string): EdgeLoad | undefined {
    return this.loads.get(edgeId);
  }

  all(): ReadonlyMap<string, EdgeLoad> {
    return this.loads;
  }
}

/** Which metric put an edge at its ratio ('none': neither is judged, the ISP is too idle). */
export type LoadMetric = 'connections' | 'bytesPerSec' | 'none';

/** An edge's load against its ISP's bound. */
export interface EdgeBound {
  load: EdgeLoad;
  /** The ISP's mean over its eligible edges that reported. */
  mean: EdgeLoad;
  /** balanceFactor × mean, per metric. */
  bound: EdgeLoad;
  /** The larger of load/mean over the judged metrics (0 when none is judged). */
  ratio: number;
  metric: LoadMetric;
  /** At or above the bound on a judged metric: no new sessions while an edge under it can take them. */
  over: boolean;
  /**
   * At or above the bound, but so is every eligible edge of its ISP: none is judged over, and
   * the ISP ranks as if unbounded (holders first, then the ring, players kept where they are).
   */
  waived: boolean;
}

/** Every edge's standing, computed once per poll (not per request). */
export interface LoadBounds {
  factor: number;
  byEdge: ReadonlyMap<string, EdgeBound>;
}

export const NO_BOUNDS: LoadBounds = Object.freeze({ factor: Infinity, byEdge: new Map() });

/**
 * Bounds per ISP. The mean is taken over the ISP's eligible edges that have a load: a down edge
 * serves nobody, and its clients are now the others' — the mean rises with them. An edge is over
 * when, on a judged metric, load ≥ factor × mean (at the bound counts as over: the bound is the
 * most an edge should carry, and the next session would take it past). Each metric is bounded
 * on its own, since each is a resource that runs out on its own (sockets, the link).
 *
 * So two edges can each be over on one metric (150 connections and 1 MB/s against 50 and 3 MB/s:
 * both 1.5× on something), and with every edge of an ISP over, the bound would prefer none:
 * holders ignored, sticky players moved back and forth. An ISP whose every eligible edge is over
 * is judged as if none were (`waived`). (A bound on the mean of the two ratios would always
 * leave an edge under, but lets an edge take sessions at 1.8× the bytes while it is at 0.6× the
 * connections — and its link is what runs out.)
 */
export function computeBounds(
  edges: Iterable<{ id: string; isp: string }>,
  loads: ReadonlyMap<string, EdgeLoad>,
  eligible: ReadonlySet<string>,
  factor: number,
): LoadBounds {
  const byIsp = new Map<string, { ids: string[]; sum: EdgeLoad; n: number }>();
  const list = [...edges];
  for (const e of list) {
    let g = byIsp.get(e.isp);
    if (!g) byIsp.set(e.isp, (g = { ids: [], sum: { connections: 0, bytesPerSec: 0 }, n: 0 }));
    g.ids.push(e.id);
    const l = loads.get(e.id);
    if (!l || !eligible.has(e.id)) continue;
    g.sum.connections += l.connections;
    g.sum.bytesPerSec += l.bytesPerSec;
    g.n++;
  }
  const byEdge = new Map<string, EdgeBound>();
  for (const g of byIsp.values()) {
    const mean = g.n === 0 ? { connections: 0, bytesPerSec: 0 } : { connections: g.sum.connections / g.n, bytesPerSec: g.sum.bytesPerSec / g.n };
    const bound = { connections: factor * mean.connections, bytesPerSec: factor * mean.bytesPerSec };
    let anyUnder = false;
    const standing: [string, EdgeBound][] = [];
    for (const id of g.ids) {
      const load = loads.get(id) ?? { connections: 0, bytesPerSec: 0 };
      let ratio = 0;
      let metric: LoadMetric = 'none';
      let over = false;
      if (mean.connections >= MIN_MEAN_CONNECTIONS) {
        ratio = load.connections / mean.connections;
        metric = 'connections';
        over = load.connections >= bound.connections;
      }
      if (mean.bytesPerSec >= MIN_MEAN_BYTES_PER_SEC) {
        const r = load.bytesPerSec / mean.bytesPerSec;
        if (metric === 'none' || r > ratio) {
          ratio = r;
          metric = 'bytesPerSec';
        }
        over ||= load.bytesPerSec >= bound.bytesPerSec;
      }
      if (!over && eligible.has(id)) anyUnder = true;
      standing.push([id, { load, mean, bound, ratio, metric, over, waived: false }]);
    }
    for (const [id, b] of standing) byEdge.set(id, anyUnder ? b : { ...b, over: false, waived: b.over });
  }
  return { factor, byEdge };
}

/** Whether an edge is at or over its bound (unknown edges are not). */
export function isOverBound(bounds: LoadBounds, edgeId: string): boolean {
  return bounds.byEdge.get(edgeId)?.over === true;
}
