import type { FastifyInstance } from 'fastify';
import { sendError } from '../../common/http-app.js';
import type { Logger } from '../../common/logger.js';
import type { EdgeHealth } from '../edge-health.js';
import { type PurgeSelector, describePurge, parsePurgeSelector } from '../../common/purge-selector.js';

/**
 * What the admin routes need of a node, and nothing more: one edge process answers it from
 * its own cache and registry; a node of several workers answers it for all of them.
 */
export interface EdgeAdminOps {
  health(): EdgeHealth | Promise<EdgeHealth>;
  /** The Prometheus exposition of the node. */
  metricsText(): Promise<{ contentType: string; body: string }>;
  /** Purges what the selector names (purge-selector.ts); objects and bytes removed. */
  purge(sel: PurgeSelector): { objects: number; bytes: number } | Promise<{ objects: number; bytes: number }>;
  /**
   * An operator's drain (on) or its end (off): /health says `draining` (503) so steering sends
   * new sessions elsewhere, while the node keeps serving whoever still comes. Not a stop, and
   * not kept across a restart. Returns whether it was drained before.
   */
  setDrained(on: boolean): boolean;
}

/**
 * GET /health (503 while draining), GET /metrics, POST /purge, POST /drain and /undrain — on an
 * admin instance already guarded.
 */
export function registerAdminRoutes(app: FastifyInstance, ops: EdgeAdminOps, logger: Logger): void {
  app.get('/health', async (_req, reply) => {
    const h = await ops.health();
    return reply.code(h.status === 'draining' ? 503 : 200).send(h);
  });
  app.get('/metrics', async (_req, reply) => {
    const m = await ops.metricsText();
    return reply.type(m.contentType).send(m.body);
  });
  app.post('/purge', async (req, reply) => {
    const parsed = parsePurgeSelector(req.body);
    if (!parsed.ok) return sendError(reply, 400, parsed.reason);
    const result = await ops.purge(parsed.selector);
    logger.info({ ...parsed.selector, what: describePurge(parsed.selector), ...result }, 'purged');
    return reply.send({ purged: result.objects, bytes: result.bytes });
  });
  // Idempotent both ways: a retried drain (or undrain) changes nothing more.
  for (const [path, on] of [['/drain', true], ['/undrain', false]] as const) {
    app.post(path, async (_req, reply) => {
      const was = ops.setDrained(on);
      if (was !== on) logger.info(on ? 'drained by an operator: health says draining, serving goes on' : 'undrained by an operator: health reports the node as it is');
      const h = await ops.health();
      return reply.send({ drained: on, changed: was !== on, status: h.status });
    });
  }
}
