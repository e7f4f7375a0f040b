import type { FastifyInstance } from 'fastify';
import { sendError } from '../../common/http-app.js';
import { isValidTitle } from '../../common/paths.js';
import { ExplainInputError, explain } from '../explain.js';
import { isEligible } from '../health.js';
import { type SteeringRouteContext, lookup } from './context.js';

/**
 * Steering's own admin routes (the dashboard and operator actions have theirs):
 *   GET /health       status, edges up, catalog size, plays
 *   GET /metrics      Prometheus
 *   GET /v1/edges     every edge's health and load as the last poll left them
 *   GET /v1/explain   why a client goes where it goes
 */
export function registerAdminRoutes(app: FastifyInstance, ctx: SteeringRouteContext): void {
  const { clock, health, registry, state } = ctx;
  const startedAt = clock.monotonic(); // uptime is an interval
  app.get('/health', async () => {
    const snap = health.snapshot();
    let up = 0;
    for (const h of snap.values()) if (isEligible(h)) up++;
    const { plays, playGate } = ctx;
    return {
      status: 'ok',
      id: 'steering',
      uptimeSec: Math.round((clock.monotonic() - startedAt) / 1000),
      edges: { total: snap.size, eligible: up },
      catalogTitles: ctx.catalog.current()?.titles.size ?? null,
      plays: {
        sent: plays.sent,
        buffered: plays.buffered,
        dropped: plays.dropped,
        // Play starts waiting for segment traffic, and what edges' confirmations came to.
        pending: playGate.pendingCount,
        ...playGate.totals,
        evicted: playGate.evicted,
      },
    };
  });
  app.get('/metrics', async (_req, reply) => reply.header('content-type', registry.contentType).send(await registry.metrics()));
  app.get('/v1/edges', async () => ({
    edges: state.topology.edges.map((e) => {
      const h = health.get(e.id)!;
      return {
        id: e.id,
        isp: e.isp,
        url: e.url,
        state: h.state,
        eligible: isEligible(h),
        reason: h.reason,
        since: new Date(h.since).toISOString(),
        failures: h.failures,
        successes: h.successes,
        lastPollAt: h.lastPollAt === undefined ? null : new Date(h.lastPollAt).toISOString(),
        lastLatencyMs: h.lastLatencyMs ?? null,
        // Smoothed load against its ISP's bound (bounded loads), as the last poll left it.
        load: state.bounds.byEdge.get(e.id) ?? null,
        health: h.lastReport ?? null,
      };
    }),
  }));

  // Why a client goes where it goes: the same decision the public routes make, spelled out.
  app.get('/v1/explain', async (req, reply) => {
    const topo = state.topology;
    const q = req.query as Record<string, unknown>;
    const ip = typeof q.ip === 'string' ? q.ip : undefined;
    const title = typeof q.title === 'string' ? q.title : undefined;
    const xff = typeof q.xff === 'string' ? q.xff : undefined;
    if (ip === undefined || ip === '') return sendError(reply, 400, 'ip: missing (GET /v1/explain?ip=ADDRESS&title=TITLE[&xff=X-Forwarded-For])');
    if (title === undefined || !isValidTitle(title)) return sendError(reply, 400, `title: ${title === undefined ? 'missing' : `"${title.slice(0, 64)}" is not a title id`}`);
    let explanation;
    try {
      explanation = explain({
        ip,
        forwardedFor: xff,
        title,
        ctx: state.decisionContext(topo),
        isps: topo.config.isps,
        trustedProxies: topo.config.steering.trustedProxies,
        edges: topo.edges,
        health: health.snapshot(),
        balanceFactor: topo.config.steering.balanceFactor,
      });
    } catch (err) {
      if (err instanceof ExplainInputError) return sendError(reply, 400, err.message);
      throw err;
    }
    const found = await lookup(ctx.catalog, title);
    if (found === 'no-catalog') return sendError(reply, 503, 'catalog unavailable: the origin cannot be reached', { 'retry-after': '5' });
    if (found === 'unknown') return sendError(reply, 404, `title: "${title}" is not in the catalog`);
    return reply.header('cache-control', 'no-store').send(explanation);
  });
}
