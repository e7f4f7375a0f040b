import type { FastifyInstance } from 'fastify';
import type { CatalogSource } from '../catalog-source.js';
import { OBJECT_PREFIX, objectHandler } from '../object-route.js';
import { ORIGIN_REFUSALS, type OriginAuth } from '../origin-auth.js';
import type { OriginContext } from '../origin-context.js';
import { STORE_FAILURES } from '../storage/storage.js';

const MANIFEST_TYPES = new Set(['application/vnd.apple.mpegurl', 'application/dash+xml']);

/** Totals since start for /health (the steering dashboard's origin egress); metrics have them by label. */
export interface ServedTotals {
  requests: number;
  bytes: number;
}

/**
 * The public port's routes: objects only, for edges — a token or a verified client certificate
 * (origin-auth.ts). Counts every answer (metrics and `served`), logs refusals and store failures.
 */
export function registerObjectRoutes(app: FastifyInstance, ctx: OriginContext, deps: { auth: OriginAuth; catalog: CatalogSource; served: ServedTotals }): void {
  const { metrics, logger, clock, state } = ctx;
  const { served } = deps;
  for (const reason of ORIGIN_REFUSALS) metrics.refused.inc({ reason }, 0); // every series from the start, at 0
  for (const reason of STORE_FAILURES) metrics.storeErrors.inc({ reason }, 0);
  /** When each kind of store failure was last logged: a throttled store fails many reads at once. */
  const storeErrorLogged = new Map<string, number>();
  app.addHook('onResponse', async (req, reply) => {
    metrics.requests.inc({ method: req.method, status: String(reply.statusCode) });
    served.requests++;
  });
  app.route({
    method: ['GET', 'HEAD'],
    url: `${OBJECT_PREFIX}*`,
    exposeHeadRoute: false,
    handler: objectHandler({
      storage: ctx.storage,
      catalog: () => state.catalog,
      onBytes: (type, n) => {
        metrics.bytes.inc({ class: MANIFEST_TYPES.has(type) ? 'manifest' : 'media' }, n);
        served.bytes += n;
      },
      // A stat, not a read, when nothing changed: a file genuinely missing must not re-read the catalog on every request.
      refreshCatalog: deps.catalog.reloadIfChanged,
      auth: deps.auth,
      nowSec: () => clock.now() / 1000,
      onRefused: (reason, path, req) => {
        metrics.refused.inc({ reason });
        // No token is ever logged. A request without one is most likely a stranger (info); a bad
        // one is most likely an edge whose keys or clock are off, which an operator must hear of.
        const line = { reqId: req.id, path, reason, remote: req.ip };
        if (reason === 'missing token') logger.info(line, 'origin refused a request');
        else logger.warn(line, 'origin refused a request');
      },
      onStoreError: (err, req) => {
        metrics.storeErrors.inc({ reason: err.reason });
        const now = clock.monotonic();
        if (now - (storeErrorLogged.get(err.reason) ?? -Infinity) < 1000) return;
        storeErrorLogged.set(err.reason, now);
        logger.warn({ reqId: req.id, reason: err.reason, err: err.message }, 'the object store failed a read: answered 503 (logged at most once a second per reason)');
      },
    }),
  });
}
