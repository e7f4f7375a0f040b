import type { ClusterConfig } from '../common/config.js';
import { drainOnSignal } from '../common/http-app.js';
import { createLogger } from '../common/logger.js';
import { createOriginServer } from './server.js';

/**
 * `reelcdn origin --config FILE`: serve the catalog until SIGTERM/SIGINT.
 * `configPath`: the cluster file, re-read on reload (SIGHUP, POST /reload).
 */
export async function runOrigin(config: ClusterConfig, configPath?: string): Promise<void> {
  const logger = createLogger('origin', config.log.level);
  const server = createOriginServer({ config, logger });
  await server.start();
  drainOnSignal(logger, () => server.close());
}
