import type { FastifyInstance } from 'fastify';
import type { CatalogResponse } from '../catalog.js';
import type { OriginContext } from '../origin-context.js';
import { packageVersion } from '../version.js';
import type { ServedTotals } from './object-routes.js';

/** GET /health, GET /metrics and GET /v1/catalog — on the admin instance, already guarded. */
export function registerAdminRoutes(app: FastifyInstance, ctx: OriginContext, deps: { startedAt: number; served: ServedTotals }): void {
  const { clock, registry, state } = ctx;
  app.get('/health', async () => ({
    status: 'ok',
    version: packageVersion(),
    uptimeSec: Math.floor((clock.monotonic() - deps.startedAt) / 1000),
    titles: state.catalog.size,
    bytes: state.catalog.bytes,
    served: { ...deps.served },
  }));
  app.get('/metrics', async (_req, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
  app.get('/v1/catalog', async (): Promise<CatalogResponse> => ({ titles: state.catalog.titles() }));
}
