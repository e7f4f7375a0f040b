import { ID_RE } from '../common/paths.js';
import type { RankableEdge, RankedEdge } from './ranking.js';

/**
 * What players tell steering when they reload the steering manifest, and what steering does
 * with it.
 *
 * HLS Content Steering (Apple, v1.2; hls.js content-steering-controller):
 *   _HLS_pathway=<id>          the pathway the player is on now
 *   _HLS_throughput=<bps>      its throughput estimate, bits per second (hls.js: its ABR
 *                              bandwidth estimate, or abrEwmaDefaultEstimate before any)
 * DASH-IF Content Steering (CTS 001; dash.js ContentSteeringController):
 *   _DASH_pathway="<a>,<b>"    the service locations used since the last reload, quoted,
 *                              comma-separated; the last one is the one in use now
 *   _DASH_throughput=<x>,<y>   bits per second measured at each of them, same order
 *                              (an empty entry: none measured)
 * A hint that cannot be read is ignored, never an error: a player must not lose its steering
 * because of it. The decision stays a function of the request: replicas still agree.
 */

/** Pathway (edge) ids are config ids: anything else is not a pathway of ours. */
const PATHWAY_RE = ID_RE;
/** A throughput above 1 Tbit/s is not a measurement. */
const MAX_THROUGHPUT_BPS = 1e12;

export interface PathwayReport {
  pathway: string;
  /** Bits per second the player measured there, if it said. */
  throughputBps?: number;
}

export interface PlayerHints {
  protocol: 'hls' | 'dash';
  /** The pathway the player is on now. */
  current: string;
  /** Throughput per pathway (HLS reports the current one only). */
  reports: PathwayReport[];
  /** Parameters present but unreadable (logged, otherwise ignored). */
  malformed: string[];
}

/** Reads the hints from a steering manifest request's query (fastify's parsed query). */
export function parsePlayerHints(query: Readonly<Record<string, unknown>> | undefined): PlayerHints | undefined {
  if (!query) return undefined;
  const hlsPathway = first(query._HLS_pathway);
  if (hlsPathway !== undefined) {
    const malformed: string[] = [];
    if (!PATHWAY_RE.test(hlsPathway)) return { protocol: 'hls', current: '', reports: [], malformed: ['_HLS_pathway'] };
    const t = first(query._HLS_throughput);
    const bps = t === undefined ? undefined : throughput(t);
    if (t !== undefined && bps === undefined) malformed.push('_HLS_throughput');
    return { protocol: 'hls', current: hlsPathway, reports: [{ pathway: hlsPathway, throughputBps: bps }], malformed };
  }
  const dashPathway = first(query._DASH_pathway);
  if (dashPathway !== undefined) {
    const malformed: string[] = [];
    const ids = unquote(dashPathway)
      .split(',')
      .map((s) => s.trim());
    const t = first(query._DASH_throughput);
    const values = t === undefined ? [] : t.split(',').map((s) => s.trim());
    const reports: PathwayReport[] = [];
    ids.forEach((id, i) => {
      if (!PATHWAY_RE.test(id)) {
        malformed.push('_DASH_pathway');
        return;
      }
      const v = values[i];
      const bps = v === undefined || v === '' ? undefined : throughput(v);
      if (v !== undefined && v !== '' && bps === undefined) malformed.push('_DASH_throughput');
      reports.push({ pathway: id, throughputBps: bps });
    });
    const current = reports.length > 0 ? reports[reports.length - 1]!.pathway : '';
    return { protocol: 'dash', current, reports, malformed: [...new Set(malformed)] };
  }
  return undefined;
}

function first(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && typeof v[0] === 'string') return v[0];
  return undefined;
}

function unquote(s: string): string {
  return s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s;
}

function throughput(s: string): number | undefined {
  if (!/^\d{1,13}(\.\d+)?$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isFinite(n) && n <= MAX_THROUGHPUT_BPS ? n : undefined;
}

/**
 * "Far below the current rendition": under half the bitrate of the title's lowest rendition.
 * The steering request does not say which rendition the player is on, but it is on one of the
 * ladder, so its bitrate is at least the lowest rung; a throughput under half of that cannot
 * sustain any rendition from that pathway. A throughput merely under the top rung is most
 * often the player's own access link, which no other edge would improve — moving it then would
 * be a needless switch.
 */
export const LOW_THROUGHPUT_RATIO = 0.5;

/** Whether a measured throughput is far below the title's lowest rendition (unknown ladder: never). */
export function isLowThroughput(throughputBps: number | undefined, ladderFloorBps: number | undefined): boolean {
  return throughputBps !== undefined && ladderFloorBps !== undefined && ladderFloorBps > 0 && throughputBps < LOW_THROUGHPUT_RATIO * ladderFloorBps;
}

/**
 * What the hints did to the ranking:
 *   none                   no hint: the ranking as it is (a new session)
 *   stay                   the player's pathway is first (sticky while eligible and under the bound)
 *   moved-down             its pathway is not offered: down, draining or not yet up
 *   moved-over-bound       its pathway is at or over the load bound
 *   moved-low-throughput   it measured far below the title's lowest rendition there
 *   moved-home             it is on another ISP's edge while an edge of its own ISP has room
 *   unknown-pathway        the pathway is no edge of this cluster (ranking as it is)
 */
export type HintOutcome = 'none' | 'stay' | 'moved-down' | 'moved-over-bound' | 'moved-low-throughput' | 'moved-home' | 'unknown-pathway';

export interface HintResult<E extends RankableEdge> {
  ranked: RankedEdge<E>[];
  outcome: HintOutcome;
}

/**
 * Applies a player's hints to the ranking of its title (pure):
 *  - its current pathway goes first ("sticky") while it is offered, under the bound, not far
 *    below the ladder and in the same group (own ISP / overflow) as the ranking's first edge:
 *    no needless switch, and its cache stays warm;
 *  - otherwise the ranking stands, which moves the player: a down or draining edge is not in it,
 *    an edge over the bound comes after every edge under it;
 *  - no pathway the player measured far below the ladder is put first while another edge is
 *    offered.
 */
export function applyPlayerHints<E extends RankableEdge>(
  ranked: readonly RankedEdge<E>[],
  hints: PlayerHints | undefined,
  opts: { isKnownEdge: (id: string) => boolean; isLow: (throughputBps: number | undefined) => boolean },
): HintResult<E> {
  if (!hints || hints.current === '') return { ranked: [...ranked], outcome: hints ? 'unknown-pathway' : 'none' };
  const low = new Set(hints.reports.filter((r) => opts.isLow(r.throughputBps)).map((r) => r.pathway));
  const out = [...ranked];
  const cur = hints.current;
  const idx = out.findIndex((r) => r.edge.id === cur);
  let reason: HintOutcome;
  if (!opts.isKnownEdge(cur)) reason = 'unknown-pathway';
  else if (idx < 0) reason = 'moved-down';
  else if (out[idx]!.rule === 'over-bound') reason = 'moved-over-bound';
  else if (low.has(cur)) reason = 'moved-low-throughput';
  else if (out[idx]!.overflow && !out[0]!.overflow) reason = 'moved-home';
  else {
    const [kept] = out.splice(idx, 1);
    out.unshift({ ...kept!, rule: 'sticky' });
    reason = 'stay';
  }
  if (low.size > 0 && out.length > 1 && low.has(out[0]!.edge.id)) {
    const j = out.findIndex((r) => !low.has(r.edge.id));
    if (j > 0) {
      const [better] = out.splice(j, 1);
      for (let i = 0; i < j; i++) out[i] = { ...out[i]!, rule: 'low-throughput' };
      out.unshift(better!);
    }
  }
  if (reason !== 'unknown-pathway' && out.length > 0 && out[0]!.edge.id === cur) reason = 'stay';
  return { ranked: out, outcome: reason };
}

/**
 * Whether a reload may give way when steering is over its decision budget: only when its player
 * may keep what it has — its pathway is fine (stay), merely another ISP's edge while its own has
 * room (moved-home), or it said nothing steering can act on (none, unknown-pathway: it keeps the
 * order its play gave it). A player whose pathway is down or draining, over the bound, or far
 * below the ladder is always answered at once.
 */
export function isDeferrable(outcome: HintOutcome): boolean {
  return outcome === 'stay' || outcome === 'moved-home' || outcome === 'none' || outcome === 'unknown-pathway';
}

/**
 * How a deferred reload is answered, by what the player does with it:
 *   longer-ttl  200 with the order and TTL + Retry-After's seconds. hls.js (1.x content steering
 *               controller) returns on a 429 without scheduling another reload: the player would
 *               never be steered again. A 200 keeps it polling, later. Also for a request without
 *               hints (no telling which player sent it).
 *   429         429 with Retry-After: dash.js takes Retry-After as its next TTL and polls again
 *               (it reads the header, which CORS exposes).
 */
export function overBudgetAnswer(protocol: PlayerHints['protocol'] | undefined): 'longer-ttl' | '429' {
  return protocol === 'dash' ? '429' : 'longer-ttl';
}

/**
 * The steering manifest's TTL: short while any edge of the player's ISP is down, so players
 * come back for a new order in seconds rather than at the next regular reload.
 */
export function steeringTtlFor(isp: string | undefined, ispsWithDownEdge: ReadonlySet<string>, anyDown: boolean, ttl: number, incidentTtl: number): number {
  const incident = isp === undefined ? anyDown : ispsWithDownEdge.has(isp);
  return incident ? Math.min(ttl, incidentTtl) : ttl;
}

/**
 * How many "player hint: moved" lines reach the info log: at most `perSecond` in any clock second;
 * the rest go to debug and are counted in the next info line (`suppressed`). Hints come from the
 * query, so anyone can send a moved one with every request: one info line per request (each
 * naming a client address) would let a stranger flood the log. Pure: time is passed in.
 */
export class InfoLineBudget {
  private second = -1;
  private used = 0;
  private skipped = 0;

  constructor(private readonly perSecond = 5) {}

  /** For one line at monotonic ms `now`: whether it goes to info, and how many were held back since the last that did. */
  take(now: number): { info: boolean; suppressed: number } {
    const second = Math.floor(now / 1000);
    if (second !== this.second) {
      this.second = second;
      this.used = 0;
    }
    if (this.used >= this.perSecond) {
      this.skipped++;
      return { info: false, suppressed: 0 };
    }
    this.used++;
    const suppressed = this.skipped;
    this.skipped = 0;
    return { info: true, suppressed };
  }
}
