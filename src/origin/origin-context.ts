import type { Registry } from 'prom-client';
import type { Clock } from '../common/clock.js';
import type { ClusterConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import type { Catalog } from './catalog.js';
import type { OriginMetrics } from './metrics.js';
import type { PlayStore } from './play-store.js';
import type { ServedStore } from './served-store.js';
import type { OriginStorage } from './storage/storage.js';

/** What changes under a running origin: every part reads it here, so each sees the others' changes. */
export interface OriginState {
  /** The catalog being served. */
  catalog: Catalog;
  /** The stored catalog.json's identity when `catalog` was read from it (`stampOf`). */
  catalogStamp: string;
  /** Opened by start(). */
  playStore?: PlayStore;
  /** Opened by start(). */
  servedStore?: ServedStore;
  /** The cluster file last applied (the one started with, until a reload). */
  cluster: ClusterConfig;
}

/** What the origin's routes and parts share, built once by the factory (server.ts). */
export interface OriginContext {
  /** The cluster file the origin started with (what restart-only fields still are). */
  boot: ClusterConfig;
  logger: Logger;
  clock: Clock;
  /** The catalog, the titles, the play counts, the serve sums and the standing fill plan (a folder, or a bucket replicas share). */
  storage: OriginStorage;
  registry: Registry;
  metrics: OriginMetrics;
  state: OriginState;
}

/** The play counts, once start() opened them. */
export function startedPlays(state: OriginState): PlayStore {
  if (!state.playStore) throw new Error('origin not started');
  return state.playStore;
}

/** What edges reported they served, once start() opened it. */
export function startedServed(state: OriginState): ServedStore {
  if (!state.servedStore) throw new Error('origin not started');
  return state.servedStore;
}
