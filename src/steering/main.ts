import { systemClock } from '../common/clock.js';
import type { ClusterConfig } from '../common/config.js';
import { drainOnSignal } from '../common/http-app.js';
import { createLogger } from '../common/logger.js';
import { createSteeringServer } from './server.js';

export interface SteeringRunOptions {
  /**
   * Where this replica listens, when not at the cluster file's URLs: replicas behind a load
   * balancer share the cluster file (and its public URL, which manifests point at) but each
   * binds its own address.
   */
  listen?: { public?: { host: string; port: number }; admin?: { host: string; port: number } };
}

/**
 * `reelcdn steering --config FILE`: runs until SIGTERM/SIGINT, then drains.
 * `configPath`: the cluster file, re-read on reload (SIGHUP, POST /reload).
 */
export async function runSteering(config: ClusterConfig, run: SteeringRunOptions = {}, configPath?: string): Promise<void> {
  const logger = createLogger('steering', config.log.level);
  const server = createSteeringServer({ config, logger, clock: systemClock, listen: run.listen, publicUrl: config.steering.url });
  await server.start();
  drainOnSignal(logger, () => server.close());
}
