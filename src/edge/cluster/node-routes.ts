import type { FastifyInstance } from 'fastify';
import { sendError } from '../../common/http-app.js';
import type { Logger } from '../../common/logger.js';
import { parseObjectPath } from '../../common/paths.js';
import type { FillAgent } from '../fill-agent.js';
import type { SeenPlays } from '../play-seen.js';
import { SEEN_PLAYS_PAGE } from '../play-seen-routes.js';
import type { NodeHealth } from './node-health.js';

export interface NodeAdminOps {
  health(): Promise<NodeHealth>;
  metricsText(): Promise<string>;
  contentType: string;
  purge(title: string, file?: string): Promise<{ objects: number; bytes: number }>;
  fill: FillAgent;
  seen: SeenPlays;
  logger: Logger;
}

/** The admin port of a multi-worker node: the node as a whole. */
export function registerNodeAdminRoutes(app: FastifyInstance, ops: NodeAdminOps): void {
  app.get('/health', async (_req, reply) => {
    const h = await ops.health();
    return reply.code(h.status === 'draining' ? 503 : 200).send(h);
  });
  app.get('/metrics', async (_req, reply) => reply.type(ops.contentType).send(await ops.metricsText()));
  app.post('/purge', async (req, reply) => {
    const body = (req.body ?? {}) as { title?: unknown; file?: unknown };
    if (typeof body.title !== 'string' || body.title === '') return sendError(reply, 400, 'body must be JSON {"title": "...", "file"?: "..."}');
    if (body.file !== undefined && typeof body.file !== 'string') return sendError(reply, 400, 'file must be a string');
    const check = parseObjectPath(`${body.title}/${body.file ?? 'x'}`);
    if (!check.ok) return sendError(reply, 400, check.reason);
    const result = await ops.purge(body.title, body.file as string | undefined);
    ops.logger.info({ title: body.title, file: body.file, ...result }, 'purged');
    return reply.send({ purged: result.objects, bytes: result.bytes });
  });
  app.get('/fill', async (_req, reply) => reply.send(ops.fill.progress()));
  app.post('/fill', async (req, reply) => {
    const run = ops.fill.runOnce({ force: true });
    if ((req.query as { wait?: string }).wait === '1') {
      try {
        return reply.send(await run);
      } catch (err) {
        return sendError(reply, 502, `fill failed: ${(err as Error).message}`);
      }
    }
    run.catch((err) => ops.logger.error({ err: (err as Error).message }, 'fill pass failed'));
    return reply.code(202).send(ops.fill.progress());
  });
  app.get('/plays', async (req, reply) => {
    const raw = (req.query as { since?: unknown }).since ?? '0';
    if (typeof raw !== 'string' || !/^\d{1,15}$/.test(raw)) return sendError(reply, 400, 'since: must be a sequence number (a non-negative integer)');
    return reply.header('cache-control', 'no-store').send(ops.seen.since(Number(raw), SEEN_PLAYS_PAGE));
  });
}
