import type { FastifyInstance } from 'fastify';
import { CORS_HEADERS } from '../../common/cors.js';
import { createApp } from '../../common/http-app.js';
import { TokenVerifier } from '../../common/signing.js';
import type { ServiceTlsMaterial } from '../../common/tls.js';
import { ClientThroughput } from '../client-throughput.js';
import { CmsdDynamicHeader } from '../cmsd-header.js';
import type { Tier } from '../edge-cache.js';
import type { EdgeContext } from '../edge-context.js';
import type { EdgeMetrics } from '../edge-metrics.js';
import type { EdgeParts } from '../edge-parts.js';
import { type HitPath, createHitPath } from '../hit-path.js';
import type { SeenPlays } from '../play-seen.js';
import { recordSeenPlays } from '../play-seen-routes.js';
import { EdgePrefetcher } from '../prefetch.js';
import { prefetchShare } from '../prefetch-budget.js';
import { PrefetchMetrics } from '../prefetch-metrics.js';
import { QoeTracker } from '../qoe.js';
import { type ServeTally, recordServed } from '../serve-report.js';
import type { TrafficStats } from '../traffic-stats.js';
import { type AnswerSink, type ObjectService, registerObjectRoutes } from './object-routes.js';

/** The public port of one edge process, and what a reload or /health reads of it. */
export interface PublicPort {
  publicApp: FastifyInstance;
  /** Read on every request (a reload may turn it on or off); the keys are the verifier's. */
  signing: { required: boolean };
  tokens: TokenVerifier;
  /** What players said (CMCD). */
  qoe: QoeTracker;
  /** The raw hit path in front of the object routes (undefined when `hitPath` is off). */
  hitPath: HitPath | undefined;
}

/**
 * The public port: the object routes (behind the raw hit path unless it is off), play ids and
 * what was served recorded, and its connections counted into the edge's load. `seen`: play ids
 * of the media served, read by steering; `tally`: what clients were served, for the origin.
 */
export function buildPublicPort(
  ctx: EdgeContext,
  parts: EdgeParts,
  tls: ServiceTlsMaterial,
  stats: TrafficStats,
  seen: SeenPlays,
  tally: ServeTally,
): PublicPort {
  const { opts, config, edge, clock, logger, registry, load } = ctx;
  const { cache, metrics } = parts;
  const signing = { required: config.signing.required };
  // CMCD (players' QoE) in, CMSD (the edge's id, duress and throughput to the client) out.
  const qoe = new QoeTracker({ now: () => clock.monotonic(), forward: opts.worker?.sessions });
  const svc: ObjectService = {
    cache,
    signing,
    tokens: new TokenVerifier(config.signing.keys),
    clock,
    logger,
    answers: answerSink(stats, metrics),
    // The next object players announce (CMCD nor/nrr), fetched into memory before they ask.
    prefetcher: new EdgePrefetcher({
      cache,
      // Budgets are the node's: a worker takes its share, recomputed as reloads change them.
      settings: () => {
        const last = ctx.last().edge;
        return prefetchShare(last.prefetch, opts.worker?.workers ?? 1, last.sliceBytes);
      },
      busy: () => load.duress,
      logger,
      counts: new PrefetchMetrics(registry, () => cache.prefetchHits, () => cache.prefetchWastedBytes),
    }),
    cmcd: metrics.watchQoe(qoe),
    cmsd: new CmsdDynamicHeader(edge.id, () => load.duress, new ClientThroughput({ now: () => clock.monotonic() })),
  };
  const hitPath = (opts.hitPath ?? true) ? createHitPath({ svc, plays: seen, served: tally }) : undefined;
  const publicApp = createApp({
    logger,
    frameworkErrorHeaders: CORS_HEADERS,
    limits: config.http,
    overloaded: () => ctx.loop.overloaded,
    front: hitPath,
    tls: tls.public,
    http2: true,
  });
  publicApp.server.on('connection', (socket) => {
    load.connectionOpened();
    socket.once('close', () => load.connectionClosed());
  });
  registerObjectRoutes(publicApp, svc);
  recordSeenPlays(publicApp, seen);
  recordServed(publicApp, tally);
  return { publicApp, signing, tokens: svc.tokens, qoe, hitPath };
}

/** Counts answers into /health's traffic stats and the metrics' tally. */
function answerSink(stats: TrafficStats, metrics: EdgeMetrics): AnswerSink {
  const tally = metrics.answers;
  return {
    answered(status: number, tier: Tier | undefined, bytes: number, seconds: number, onlyIfCachedMiss: boolean) {
      stats.record(status, bytes, tier, onlyIfCachedMiss);
      tally.record(tier, status, bytes, seconds);
    },
  };
}
