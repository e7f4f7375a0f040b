import type { ClusterConfig } from '../common/config.js';
import { drainOnSignal } from '../common/http-app.js';
import { createLogger } from '../common/logger.js';
import { Reloader, onSighup, registerReloadRoute } from '../common/reload.js';
import { createOriginServer } from './server.js';

/**
 * `reelcdn origin --config FILE`: serve the catalog until SIGTERM/SIGINT. With the cluster
 * file's path, SIGHUP and POST /reload on the admin port reload it (keys, certificates, the
 * edges fill plans are made for).
 */
export async function runOrigin(
  config: ClusterConfig,
  configPath?: string,
  /** Where to bind instead of the URLs' host and port (a pod binds 0.0.0.0; its URLs name a Service). */
  listen: { public?: { host: string; port: number }; admin?: { host: string; port: number } } = {},
): Promise<void> {
  const logger = createLogger('origin', config.log.level);
  const server = createOriginServer({ config, logger, listen });
  if (configPath !== undefined) {
    const reloader = new Reloader({ configPath, logger, apply: (next) => server.reload(next), registry: server.registry });
    // Before listen: fastify takes no route once it is ready.
    registerReloadRoute(server.adminApp, reloader);
    onSighup(reloader);
  }
  await server.start();
  drainOnSignal(logger, () => server.close());
}
