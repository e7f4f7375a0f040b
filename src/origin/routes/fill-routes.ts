import type { FastifyInstance } from 'fastify';
import { sendError } from '../../common/http-app.js';
import type { FillPlans } from '../fill-plans.js';
import type { OriginContext } from '../origin-context.js';
import { SliceDigests } from '../slice-digests.js';
import { DirStorage } from '../storage/dir-storage.js';
import { entryFileKey, rangeSource } from '../storage/storage.js';

/** GET /v1/manifests/:edgeId (an edge's fill manifest, ETag'd) and GET /v1/placements — on the admin instance. */
export function registerFillRoutes(app: FastifyInstance, ctx: OriginContext, plans: FillPlans): void {
  const { storage, logger, state } = ctx;
  const digests = new SliceDigests();
  app.get('/v1/manifests/:edgeId', async (req, reply) => {
    const { edgeId } = req.params as { edgeId: string };
    let manifest;
    try {
      manifest = await plans.manifestFor(edgeId);
    } catch (err) {
      return sendError(reply, 503, (err as Error).message);
    }
    if (!manifest) return sendError(reply, 404, `no edge "${edgeId}" in the cluster file`);
    const etag = `"${manifest.version}"`;
    reply.header('etag', etag).header('cache-control', 'no-cache');
    if (req.headers['if-none-match'] === etag) return reply.code(304).send();
    // Prefix ranges carry the digests of their slices (read from the files once, remembered).
    const c = state.catalog;
    try {
      return reply.send(await digests.complete(manifest, (t, f) => {
        const entry = c.get(t);
        const file = c.file(t, f);
        if (!entry || !file) return undefined;
        const key = entryFileKey(entry, f);
        return storage instanceof DirStorage ? storage.pathOf(key) : rangeSource(storage, key, file.size);
      }));
    } catch (err) {
      logger.error({ edgeId, err: (err as Error).message }, 'fill manifest: slice digests unreadable');
      return sendError(reply, 503, `slice digests unavailable: ${(err as Error).message}`);
    }
  });
  app.get('/v1/placements', async (_req, reply) => {
    try {
      return { placements: (await plans.current()).placements };
    } catch (err) {
      return sendError(reply, 503, (err as Error).message);
    }
  });
}
