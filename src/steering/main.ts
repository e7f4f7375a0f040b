import { systemClock } from '../common/clock.js';
import type { ClusterConfig } from '../common/config.js';
import { drainOnSignal } from '../common/http-app.js';
import { createLogger } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import { Reloader, onSighup, registerReloadRoute } from '../common/reload.js';
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
  const registry = createRegistry('steering');
  const server = createSteeringServer({ config, logger, registry, clock: systemClock, listen: run.listen, publicUrl: config.steering.url, followLogLevel: true });
  if (configPath !== undefined) {
    // Before listening: routes cannot be added later, and a SIGHUP during the start must not kill us.
    const reloader = new Reloader({ configPath, logger, apply: (next) => server.reload(next), registry });
    registerReloadRoute(server.adminApp, reloader);
    onSighup(reloader);
  }
  await server.start();
  drainOnSignal(logger, () => server.close());
}
