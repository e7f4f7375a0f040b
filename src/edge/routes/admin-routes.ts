import type { FastifyInstance } from 'fastify';
import { sendError } from '../../common/http-app.js';
import type { Logger } from '../../common/logger.js';
import { parseObjectPath } from '../../common/paths.js';
import type { EdgeHealth } from '../edge-health.js';

/**
 * What the admin routes need of a node, and nothing more: one edge process answers it from
 * its own cache and registry; a node of several workers answers it for all of them.
 */
export interface EdgeAdminOps {
  health(): EdgeHealth | Promise<EdgeHealth>;
  /** The Prometheus exposition of the node. */
  metricsText(): Promise<{ contentType: string; body: string }>;
  /** Purges one file, or every file of a title; objects and bytes removed. */
  purge(title: string, file?: string): { objects: number; bytes: number } | Promise<{ objects: number; bytes: number }>;
}

/** GET /health (503 while draining), GET /metrics, POST /purge — on an admin instance already guarded. */
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
    const body = (req.body ?? {}) as { title?: unknown; file?: unknown };
    if (typeof body.title !== 'string' || body.title === '') return sendError(reply, 400, 'body must be JSON {"title": "...", "file"?: "..."}');
    if (body.file !== undefined && typeof body.file !== 'string') return sendError(reply, 400, 'file must be a string');
    const check = parseObjectPath(`${body.title}/${body.file ?? 'x'}`);
    if (!check.ok) return sendError(reply, 400, check.reason);
    const result = await ops.purge(body.title, body.file as string | undefined);
    logger.info({ title: body.title, file: body.file, ...result }, 'purged');
    return reply.send({ purged: result.objects, bytes: result.bytes });
  });
}
