import type { FastifyInstance } from 'fastify';
import { setOpenAdminPaths } from '../../common/admin-auth.js';
import { adminGuard, adminLimits, createApp, listenerServer } from '../../common/http-app.js';
import type { ServiceTlsMaterial } from '../../common/tls.js';
import { watchCertificateExpiry } from '../../common/tls-metrics.js';
import type { EdgeContext } from '../edge-context.js';
import type { EdgeParts } from '../edge-parts.js';
import type { SeenPlays } from '../play-seen.js';
import { registerPlaysRoute } from '../play-seen-routes.js';
import { type EdgeAdminOps, registerAdminRoutes } from './admin-routes.js';
import { registerFillRoutes } from './fill-routes.js';

/** The admin port of one edge process, and the guard's open paths a reload swaps. */
export interface AdminPort {
  adminApp: FastifyInstance;
  openPaths: Set<string>;
}

/**
 * The admin port, behind its guard: plays (steering reads them), health, metrics, purge, drain
 * and fill. `publicApp`: whose certificate the expiry metric watches along with the admin one.
 */
export function buildAdminPort(
  ctx: EdgeContext,
  parts: EdgeParts,
  tls: ServiceTlsMaterial,
  publicApp: FastifyInstance,
  seen: SeenPlays,
  ops: Pick<EdgeAdminOps, 'health' | 'setDrained'>,
): AdminPort {
  const { opts, config, logger, registry } = ctx;
  const adminApp = createApp({ logger, requestLogLevel: 'debug', limits: adminLimits(config.http), tls: tls.admin, http2: true });
  const openPaths = setOpenAdminPaths(new Set<string>(), config.admin);
  adminApp.addHook('onRequest', adminGuard(openPaths, opts.adminToken));
  // A worker's listener is its node's: the primary reports the node's certificates once.
  if (!opts.worker) watchCertificateExpiry(registry, { public: () => listenerServer(publicApp).tlsMaterial, admin: () => listenerServer(adminApp).tlsMaterial });
  registerPlaysRoute(adminApp, seen);
  registerAdminRoutes(
    adminApp,
    {
      health: ops.health,
      metricsText: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
      purge: (sel) => parts.cache.purge(sel),
      setDrained: ops.setDrained,
    },
    logger,
  );
  registerFillRoutes(adminApp, parts.fill, logger);
  return { adminApp, openPaths };
}
