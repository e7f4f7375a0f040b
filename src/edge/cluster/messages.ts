import type { ClusterConfig, EdgeConfig } from '../../common/config.js';
import type { ClientTls, ServiceTlsMaterial } from '../../common/tls.js';
import type { DiskSnapshot } from '../disk-tier.js';
import type { PreparedEdgeReload } from '../reload-plan.js';
import type { PurgeSelector } from '../../common/purge-selector.js';
import type { EdgeStatus } from '../edge-health.js';

/**
 * What a node's primary and its workers say to each other (over `Rpc`). Calls have replies;
 * notices do not. All bodies are structured clones.
 */

/** Call worker → primary, first thing: who am I, and the disk index as it is now. */
export const INIT = 'init';
export interface InitReply {
  config: ClusterConfig;
  edge: EdgeConfig;
  /** The certificates the node serves and shows, as the primary read them: a worker reads no certificate file. */
  tls: ServiceTlsMaterial;
  clientTls: ClientTls | undefined;
  worker: number;
  workers: number;
  /** The public address every worker binds (a port 0 in the cluster file is chosen once, by the primary). */
  publicListen: { host: string; port: number };
  /** The owner's disk index, for the worker's replica (DiskTier snapshot). */
  snapshot: DiskSnapshot;
  /** The node is drained by an operator (a worker restarted meanwhile starts drained; then DRAINED notices). */
  drained: boolean;
  /** The node's status as the primary last merged it (then NODE_STATUS notices). */
  nodeStatus: EdgeStatus;
}

/** Call worker → primary: may I fetch this slice upstream? Reply: ClaimVerdict. */
export const CLAIM = 'claim';
export interface ClaimBody {
  key: string;
  index: number;
}
/** Notice worker → primary: done with a granted claim. */
export const RELEASE = 'release';

/** Notice worker → primary: listening; body { publicUrl }. */
export const READY = 'ready';
/** Notice worker → primary: play ids this worker served media for (batched). */
export const PLAYS_SEEN = 'plays-seen';
/** Notice worker → primary: CMCD session sightings (batched; body SessionBatch, node-sessions.ts). */
export const SESSIONS = 'sessions';

/** Disk replica → owner. Call: commit a prepared slice. Notices: the rest of DiskRemote. */
export const DISK_COMMIT = 'disk.commit';
export const DISK_TOUCH_VALIDATED = 'disk.touchValidated';
export const DISK_TOUCHED = 'disk.touched';
export const DISK_DAMAGED = 'disk.damaged';
/** Notice replica → owner: an object no longer current upstream; body { key, rep }. */
export const DISK_DROPPED = 'disk.dropped';

/** Notice primary → workers: a change of the owner's disk index (DiskEvent). */
export const DISK_EVENT = 'disk.event';
/** Notice primary → workers: the fill published an object; learn it from the disk. */
export const ADOPT = 'adopt';
/** Call primary → worker: purge from memory and metadata; reply { objects, bytes }. */
export const PURGE = 'purge';
export type PurgeBody = PurgeSelector;
/** Call primary → worker: this worker's health and metrics; reply WorkerStats. */
export const STATS = 'stats';
export interface StatsBody {
  /** A /health read (not the fill's poll): the event-loop delay's window starts again after it. */
  resetLoopDelay: boolean;
}
/**
 * Call primary → worker: apply this reload, prepared by the primary (the file checked, the
 * certificates read: the worker applies these bytes and reads nothing); reply ReloadOutcome.
 * A worker not started yet applies it once its server exists.
 */
export const RELOAD = 'reload';
export type ReloadBody = PreparedEdgeReload;
/**
 * Notice primary → workers: an operator's drain (true) or its end (false). Workers keep serving;
 * their answers say duress (CMSD `du`) and their prefetch stops, as a one-process edge's do.
 */
export const DRAINED = 'drained';
/**
 * Notice primary → workers: the node's status changed (body EdgeStatus, as its /health says it).
 * A worker's CMSD `du` and its prefetch's overload skip follow the node, not the worker's own
 * connections against the node's limit (nor one slow worker loop the node's majority outvotes).
 */
export const NODE_STATUS = 'node-status';
/** Call primary → worker: drain and exit. */
export const DRAIN = 'drain';
