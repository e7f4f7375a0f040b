import type { FastifyInstance } from 'fastify';
import { sendError } from '../../common/http-app.js';
import type { OriginContext } from '../origin-context.js';
import { parsePlaysBody } from '../plays.js';

/** POST /v1/plays: plays steering confirmed, counted per ISP (204; 503 until start() opened the counts). */
export function registerPlayRoutes(app: FastifyInstance, ctx: OriginContext): void {
  const { metrics, state } = ctx;
  app.post('/v1/plays', async (req, reply) => {
    const parsed = parsePlaysBody(req.body);
    if (!parsed.ok) return sendError(reply, 400, parsed.error);
    if (!state.playStore) return sendError(reply, 503, 'starting');
    state.playStore.record(parsed.plays);
    for (const p of parsed.plays) metrics.plays.inc({ isp: p.isp });
    return reply.code(204).send();
  });
}
