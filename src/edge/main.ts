import type { ClusterConfig, EdgeConfig } from '../common/config.js';
import { adminTokenFromEnv } from '../common/admin-auth.js';
import { drainOnSignal } from '../common/http-app.js';
import { createLogger } from '../common/logger.js';
import { Reloader, onSighup, registerReloadRoute } from '../common/reload.js';
import { createEdgeServer } from './server.js';

/**
 * `reelcdn edge --config FILE --id EDGE_ID [--workers N]`: one edge node until SIGTERM drains it.
 * One worker is one process; more are a primary and N worker processes (cluster/node.ts).
 * With the cluster file's path, SIGHUP and POST /reload on the admin port reload it (keys,
 * certificates, fill settings; the node's primary hands the file to its workers).
 */
export async function runEdge(
  config: ClusterConfig,
  edge: EdgeConfig,
  workers = 1,
  configPath?: string,
  /** Where to bind instead of the URLs' host and port (a pod binds 0.0.0.0; its URLs name a Service). */
  listen: { public?: { host: string; port: number }; admin?: { host: string; port: number } } = {},
): Promise<void> {
  const logger = createLogger('edge', config.log.level, edge.id);
  if (!adminTokenFromEnv()) logger.warn('REELCDN_ADMIN_TOKEN is not set: admin routes other than open ones refuse everyone');
  if (workers > 1) {
    const { EdgeNode } = await import('./cluster/node.js');
    const node = new EdgeNode({ config, edge, workers, logger, publicListen: listen.public, adminListen: listen.admin });
    if (configPath !== undefined) {
      const reloader = new Reloader({ configPath, logger, apply: (next) => node.reload(next), registry: node.registry });
      registerReloadRoute(node.adminApp, reloader);
      onSighup(reloader);
    }
    await node.start();
    drainOnSignal(logger, () => node.close());
    return;
  }
  const server = createEdgeServer({ config, edge, logger, listen });
  if (configPath !== undefined) {
    const reloader = new Reloader({ configPath, logger, apply: (next) => server.reload(next), registry: server.metrics.registry });
    // Before listen: fastify takes no route once it is ready.
    registerReloadRoute(server.adminApp, reloader);
    onSighup(reloader);
  }
  await server.start();
  drainOnSignal(logger, () => server.close());
}
