import type { ClusterConfig, EdgeConfig } from '../common/config.js';
import { adminTokenFromEnv } from '../common/admin-auth.js';
import { drainOnSignal } from '../common/http-app.js';
import { createLogger } from '../common/logger.js';
import { createEdgeServer } from './server.js';

/** `reelcdn edge --config FILE --id EDGE_ID`: one edge node until SIGTERM drains it. */
export async function runEdge(config: ClusterConfig, edge: EdgeConfig): Promise<void> {
  const logger = createLogger('edge', config.log.level, edge.id);
  if (!adminTokenFromEnv()) logger.warn('REELCDN_ADMIN_TOKEN is not set: admin routes other than open ones refuse everyone');
  const server = createEdgeServer({ config, edge, logger });
  await server.start();
  drainOnSignal(logger, () => server.close());
}
