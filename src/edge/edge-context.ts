import type { Registry } from 'prom-client';
import type { Clock } from '../common/clock.js';
import type { ClusterConfig, EdgeConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import type { EdgeLoad } from './edge-load.js';
import type { EdgeView } from './reload-plan.js';
import type { EdgeServerOptions } from './server.js';

/** What the parts of one edge process share: its options, the file it started with, and its load. */
export interface EdgeContext {
  opts: EdgeServerOptions;
  /**
   * The cluster file this edge started with: right for restart-only fields only. Anything a reload
   * changes (keys, thresholds, fill, prefetch, TLS) is read through last(), at the time it is used.
   */
  config: ClusterConfig;
  /** This edge's entry of that file, as started (same caveat). */
  edge: EdgeConfig;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  /** The event loop's verdict (LoopMonitor): overloaded only on a sustained delay. */
  loop: { readonly overloaded: boolean };
  load: EdgeLoad;
  /** The cluster file last applied (a reload changes it). */
  last(): EdgeView;
}
