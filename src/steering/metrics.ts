import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EdgeHealth, EdgeState } from './health.js';

/** Numeric value of the edge state gauge. */
export const EDGE_STATE_VALUE: Record<EdgeState, number> = { unknown: -1, down: 0, suspect: 1, up: 2 };

export interface SteeringMetrics {
  decisions: Counter<'isp' | 'kind' | 'outcome'>;
  edgeState: Gauge<'edge' | 'isp'>;
  pollLatency: Histogram<'edge' | 'outcome'>;
  playsSent: Gauge;
  playsBuffered: Gauge;
  playsDropped: Gauge;
  /** Play starts (top-level manifests) by title and client ISP: the dashboard's top titles. Titles are bounded by the catalog. */
  playStarts: Counter<'title' | 'isp'>;
  /** Play ids edges reported serving media for, by what steering made of them (PlayOutcome). */
  playConfirmations: Counter<'outcome'>;
}

/**
 * Why an edge is in its state, as a small enum for a metric label (the free-text reason has
 * numbers in it): which threshold refused it, or why polls fail.
 */
export const HEALTH_REASONS = ['ok', 'not_polled', 'poll_failed', 'draining', 'overloaded', 'error_ratio', 'disk', 'connections', 'recovering', 'other'] as const;
export type HealthReasonKind = (typeof HEALTH_REASONS)[number];

export function healthReasonKind(reason: string): HealthReasonKind {
  if (reason === 'ok') return 'ok';
  if (reason === 'not polled yet') return 'not_polled';
  if (reason.startsWith('poll failed')) return 'poll_failed';
  if (reason === 'draining' || reason === 'overloaded') return reason;
  if (reason.startsWith('error ratio')) return 'error_ratio';
  if (reason.startsWith('disk ')) return 'disk';
  if (/ connections, above /.test(reason)) return 'connections';
  if (reason.startsWith('recovering')) return 'recovering';
  return 'other';
}

/**
 * `reelcdn_steering_edge_health_reason{edge,isp,reason}`: 1 for the reason of each edge's
 * current state, 0 for the other reasons; sampled from the poller's snapshot on scrape.
 */
export function watchEdgeHealth(
  registry: Registry,
  edges: readonly { id: string; isp: string }[] | (() => readonly { id: string; isp: string }[]),
  snapshot: () => ReadonlyMap<string, EdgeHealth>,
): void {
  const current = typeof edges === 'function' ? edges : () => edges;
  new Gauge({
    name: 'reelcdn_steering_edge_health_reason',
    help: `Why each edge is in its state, as steering sees it: 1 for the current reason (${HEALTH_REASONS.join(', ')}), 0 for the others`,
    labelNames: ['edge', 'isp', 'reason'],
    registers: [registry],
    collect() {
      const snap = snapshot();
      // Only the edges configured now: one a reload removed has no series left.
      this.reset();
      for (const e of current()) {
        const h = snap.get(e.id);
        const now = h ? healthReasonKind(h.reason) : 'not_polled';
        for (const r of HEALTH_REASONS) this.set({ edge: e.id, isp: e.isp, reason: r }, r === now ? 1 : 0);
      }
    },
  });
}

export function createSteeringMetrics(registry: Registry, plays: () => { sent: number; buffered: number; dropped: number }): SteeringMetrics {
  return {
    decisions: new Counter({
      name: 'reelcdn_steering_decisions_total',
      help: 'Steering answers by client ISP, kind (play, steer, locate) and outcome (ok, no_edge, not_found, bad_request, origin_error)',
      labelNames: ['isp', 'kind', 'outcome'],
      registers: [registry],
    }),
    edgeState: new Gauge({
      name: 'reelcdn_steering_edge_state',
      help: 'Health of each edge as steering sees it: 2 up, 1 suspect, 0 down, -1 not polled yet',
      labelNames: ['edge', 'isp'],
      registers: [registry],
    }),
    pollLatency: new Histogram({
      name: 'reelcdn_steering_health_poll_seconds',
      help: 'Latency of edge /health polls',
      labelNames: ['edge', 'outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2],
      registers: [registry],
    }),
    playsSent: new Gauge({
      name: 'reelcdn_steering_plays_sent',
      help: 'Play starts the origin accepted since start',
      registers: [registry],
      collect() {
        this.set(plays().sent);
      },
    }),
    playsBuffered: new Gauge({
      name: 'reelcdn_steering_plays_buffered',
      help: 'Play starts waiting to be sent to the origin',
      registers: [registry],
      collect() {
        this.set(plays().buffered);
      },
    }),
    playStarts: new Counter({
      name: 'reelcdn_steering_play_starts_total',
      help: 'Play starts (top-level manifests answered) by title and client ISP',
      labelNames: ['title', 'isp'],
      registers: [registry],
    }),
    playConfirmations: new Counter({
      name: 'reelcdn_steering_play_confirmations_total',
      help: 'Play ids edges served media for, by outcome: counted (sent to the origin), duplicate (the client played the title within playDedupSeconds), unknown (another steering replica\'s, already confirmed, expired or made up)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    playsDropped: new Gauge({
      name: 'reelcdn_steering_plays_dropped',
      help: 'Play starts dropped because the buffer was full (origin away too long)',
      registers: [registry],
      collect() {
        this.set(plays().dropped);
      },
    }),
  };
}
