import { type Dispatcher, request } from 'undici';
import type { Clock } from '../../common/clock.js';
import type { Logger } from '../../common/logger.js';
import type { ClientTls } from '../../common/tls.js';
import { type HealthFetcher, HealthPoller, undiciHealthFetcher } from '../health-poller.js';
import type { Holdings } from '../holdings.js';
import { EDGE_STATE_VALUE, type SteeringMetrics } from '../metrics.js';
import type { PlayGate } from '../play-gate.js';
import type { PlayRecord, PlayReporter } from '../play-reporter.js';
import { type SeenPlaysFetcher, SeenPlaysPoller, undiciSeenPlaysFetcher } from '../seen-plays-poller.js';
import type { DecisionState } from './decision-state.js';

/** Sends a batch of counted plays to the origin's admin port (POST /v1/plays). */
export function originPlaySender(originAdminUrl: string, adminToken: string | undefined, dispatcher: Dispatcher) {
  const playAgentTimeout = 5000;
  return async (batch: PlayRecord[]) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (adminToken) headers.authorization = `Bearer ${adminToken}`;
    const res = await request(`${originAdminUrl}/v1/plays`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ plays: batch }),
      dispatcher,
      headersTimeout: playAgentTimeout,
      bodyTimeout: playAgentTimeout,
    });
    await res.body.dump();
    if (res.statusCode >= 300) throw new Error(`origin answered HTTP ${res.statusCode} to POST /v1/plays`);
  };
}

export interface FeedsOptions {
  state: DecisionState;
  clock: Clock;
  logger: Logger;
  metrics: SteeringMetrics;
  playGate: PlayGate;
  plays: PlayReporter;
  holdings: Holdings;
  adminToken: string | undefined;
  clientTls: ClientTls | undefined;
  /** Timeout of one poll (ms). */
  timeoutMs: number;
  /** Replace the undici fetchers (tests). */
  healthFetcher?: HealthFetcher;
  seenPlaysFetcher?: SeenPlaysFetcher;
}

/**
 * What steering learns from its edges: their /health (eligibility, loads, held titles) and the
 * plays they saw media of (a play counts only then). The real fetchers are returned to be
 * closed and given new trust on reload; absent when a test replaced them.
 */
export function createEdgeFeeds(o: FeedsOptions) {
  const { state, clock, logger, metrics } = o;
  const topology = state.topology;
  const realSeenFetcher = o.seenPlaysFetcher ? undefined : undiciSeenPlaysFetcher({ timeoutMs: o.timeoutMs, adminToken: o.adminToken, tls: o.clientTls });
  const seenPlays = new SeenPlaysPoller({
    edges: topology.edges,
    intervalMs: topology.healthIntervalMs,
    clock,
    logger,
    fetcher: o.seenPlaysFetcher ?? realSeenFetcher!.fetcher,
    onSeen: (ids) => {
      const now = clock.monotonic();
      for (const id of ids) {
        const v = o.playGate.confirm(id, now);
        metrics.playConfirmations.inc({ outcome: v.outcome });
        if (v.outcome === 'counted') o.plays.record({ title: v.play.title, isp: v.play.isp, at: v.play.at });
      }
    },
  });
  for (const e of topology.edges) metrics.edgeState.set({ edge: e.id, isp: e.isp }, EDGE_STATE_VALUE.unknown);

  const realFetcher = o.healthFetcher ? undefined : undiciHealthFetcher({ timeoutMs: o.timeoutMs, adminToken: o.adminToken, tls: o.clientTls });
  const health = new HealthPoller({
    edges: topology.edges,
    params: topology.healthParams,
    intervalMs: topology.healthIntervalMs,
    clock,
    logger,
    fetcher: o.healthFetcher ?? realFetcher!.fetcher,
    onPoll: (edgeId, result, h) => {
      // The poller reports only edges of the current file (it drops what a reload removed).
      const edge = state.topology.edgesById.get(edgeId);
      if (edge === undefined) return;
      metrics.edgeState.set({ edge: edgeId, isp: edge.isp }, EDGE_STATE_VALUE[h.state]);
      metrics.pollLatency.observe({ edge: edgeId, outcome: result.ok ? 'ok' : 'error' }, result.latencyMs / 1000);
      if (result.ok) o.holdings.update(edgeId, Array.isArray(result.report.fill?.heldTitles) ? result.report.fill.heldTitles : undefined);
      state.observePoll(edgeId, result, h);
    },
  });
  return { health, seenPlays, realFetcher, realSeenFetcher };
}
