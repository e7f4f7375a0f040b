import type { FastifyInstance } from 'fastify';
import { sendError } from '../../common/http-app.js';
import type { Logger } from '../../common/logger.js';
import type { FillProgress } from '../fill-agent.js';

/** What the fill routes need of a node's fill agent. */
export interface FillOps {
  progress(): FillProgress;
  /** One pass now; resolves with the progress at its end. */
  runOnce(opts: { force: boolean }): Promise<unknown>;
}

/** GET /fill (progress), POST /fill (a pass now; `?wait=1` answers when it ends). */
export function registerFillRoutes(app: FastifyInstance, fill: FillOps, logger: Logger): void {
  app.get('/fill', async (_req, reply) => reply.send(fill.progress()));
  app.post('/fill', async (req, reply) => {
    const wait = (req.query as { wait?: string }).wait === '1';
    const run = fill.runOnce({ force: true });
    if (wait) {
      try {
        return reply.send(await run);
      } catch (err) {
        return sendError(reply, 502, `fill failed: ${(err as Error).message}`);
      }
    }
    run.catch((err) => logger.error({ err: (err as Error).message }, 'fill pass failed'));
    return reply.code(202).send(fill.progress());
  });
}
