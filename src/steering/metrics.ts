import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EdgeState } from './health.js';

/** Numeric value of the edge state gauge. */
export const EDGE_STATE_VALUE: Record<EdgeState, number> = { unknown: -1, down: 0, suspect: 1, up: 2 };

export interface SteeringMetrics {
  decisions: Counter<'isp' | 'kind' | 'outcome'>;
  edgeState: Gauge<'edge' | 'isp'>;
  pollLatency: Histogram<'edge' | 'outcome'>;
  playsSent: Gauge;
  playsBuffered: Gauge;
  playsDropped: Gauge;
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
