import { systemClock } from '../common/clock.js';
import type { ClusterConfig } from '../common/config.js';
import { drainOnSignal } from '../common/http-app.js';
import { createLogger } from '../common/logger.js';
import { createSteeringServer } from './server.js';

/** `reelcdn steering --config FILE`: runs until SIGTERM/SIGINT, then drains. */
export async function runSteering(config: ClusterConfig): Promise<void> {
  const logger = createLogger('steering', config.log.level);
  const server = createSteeringServer({ config, logger, clock: systemClock });
  await server.start();
  drainOnSignal(logger, () => server.close());
}
