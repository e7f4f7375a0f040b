import type { ClusterConfig, EdgeConfig } from '../common/config.js';
import { adminTokenFromEnv } from '../common/admin-auth.js';
import { drainOnSignal } from '../common/http-app.js';
import { createLogger } from '../common/logger.js';
import { createEdgeServer } from './server.js';

/**
 * `reelcdn edge --config FILE --id EDGE_ID [--workers N]`: one edge node until SIGTERM drains it.
 * One worker is one process; more are a primary and N worker processes (cluster/node.ts).
 * `configPath`: the cluster file, re-read on reload (SIGHUP, POST /reload).
 */
export async function runEdge(config: ClusterConfig, edge: EdgeConfig, workers = 1, configPath?: string): Promise<void> {
  const logger = createLogger('edge', config.log.level, edge.id);
  if (!adminTokenFromEnv()) logger.warn('REELCDN_ADMIN_TOKEN is not set: admin routes other than open ones refuse everyone');
  if (workers > 1) {
    const { EdgeNode } = await import('./cluster/node.js');
    const node = new EdgeNode({ config, edge, workers, logger });
    await node.start();
    drainOnSignal(logger, () => node.close());
    return;
  }
  const server = createEdgeServer({ config, edge, logger });
  await server.start();
  drainOnSignal(logger, () => server.close());
}
