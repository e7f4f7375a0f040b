import type { FastifyInstance } from 'fastify';
import { setOpenAdminPaths } from '../common/admin-auth.js';
import type { ClusterConfig } from '../common/config.js';
import { listenerServer } from '../common/http-app.js';
import { sameTlsMaterial, swapCertificateIfChanged } from '../common/listener-server.js';
import type { Logger } from '../common/logger.js';
import type { ReloadOutcome } from '../common/reload.js';
import { type ClientTls, type ServiceTlsMaterial, type TlsMaterial, clientTlsKey, clusterClientTls, loadServiceTls } from '../common/tls.js';
import type { LoadTracker } from './bounded-load.js';
import type { CatalogSource } from './catalog.js';
import type { HealthPoller } from './health-poller.js';
import type { Holdings } from './holdings.js';
import { EDGE_STATE_VALUE, type SteeringMetrics } from './metrics.js';
import { type MpdCache, tokenPeriodSec } from './mpd-cache.js';
import type { SeenPlaysPoller } from './seen-plays-poller.js';
import { type Topology, buildTopology, steeringChanges } from './topology.js';

/**
 * Reload of a steering process, in two steps. `prepareSteeringReload` does everything that can
 * refuse the file — the topology built (a prefix list the table refuses), the certificates read
 * and checked, the cluster's CA files read — and changes nothing. `applySteeringReload` swaps it
 * all in with code that reads no file and cannot throw, synchronously (no request sees half of
 * it) up to the poll interval, which changes after the round under way.
 */

/** What steering serves, shows and trusts now. */
export interface SteeringTlsState {
  /** Its listeners' certificates and its client identity (steering.tls). */
  tls: ServiceTlsMaterial;
  clientTls: ClientTls | undefined;
}

/** A reload with everything that can refuse it done. */
export interface PreparedSteeringReload extends ReloadOutcome, SteeringTlsState {
  config: ClusterConfig;
  topology: Topology;
  /** What steering trusts or shows toward the origin and the edges changed: its callers take `clientTls`. */
  clientTlsChanged: boolean;
}

/**
 * Prepares a reload from what steering runs now (`served`: what each listener's new connections
 * get). Throws a ConfigError naming the field, and nothing has changed then. Certificates count
 * as changed by their bytes (`steering.tls`, `steering.adminTls`, and `caFile` for the CA files
 * steering trusts), since a renewal keeps the file names. `followLogLevel`: this process's
 * logger follows `log.level` (a test's shared logger does not, and does not report it).
 */
export function prepareSteeringReload(
  now: SteeringTlsState & { topology: Topology; served: { public?: TlsMaterial; admin?: TlsMaterial } },
  next: ClusterConfig,
  followLogLevel: boolean,
): PreparedSteeringReload {
  const { applied, needsRestart } = steeringChanges(now.topology.config, next);
  const topology = buildTopology(next);
  const tls = loadServiceTls(next.steering, 'steering');
  const clientTls = clusterClientTls(next, tls.identity);
  // A listener started without TLS cannot take one (nor the reverse): its URL changed, a restart.
  const takes = (served: TlsMaterial | undefined, m: TlsMaterial | undefined) => served !== undefined && m !== undefined && !sameTlsMaterial(served, m);
  // steering.tls is also the certificate shown to the services steering calls.
  if (takes(now.served.public, tls.public) || !sameTlsMaterial(now.tls.identity, tls.identity)) applied.push('steering.tls');
  if (takes(now.served.admin, tls.admin)) applied.push('steering.adminTls');
  // Trust and identity toward the origin and the edges; steering's own certificate is steering.tls above.
  const clientTlsChanged = clientTlsKey(now.clientTls) !== clientTlsKey(clientTls);
  // The CA files of the cluster (what steering trusts), read again: one may have been replaced in place.
  if (!sameCas(now.clientTls?.cas, clientTls?.cas)) applied.push('caFile');
  if (!followLogLevel && applied.includes('log.level')) applied.splice(applied.indexOf('log.level'), 1);
  return { config: next, topology, tls, clientTls, clientTlsChanged, applied, needsRestart };
}

/** The parts of a steering server a reload swaps. */
export interface SteeringReloadParts {
  logger: Logger;
  followLogLevel: boolean;
  publicApp: FastifyInstance;
  adminApp: FastifyInstance;
  /** The admin guard's open paths (the dashboard's stay). */
  openPaths: Set<string>;
  /** Whatever calls the origin or the edges: takes the new trust and identity for new connections. */
  callers: readonly ({ setTls(tls: ClientTls | undefined): unknown } | undefined)[];
  health: HealthPoller;
  seenPlays: SeenPlaysPoller;
  metrics: Pick<SteeringMetrics, 'edgeState' | 'pollLatency'>;
  holdings: Holdings;
  loads: LoadTracker;
  catalog: CatalogSource;
  mpdCache: MpdCache;
  /**
   * Swaps what each request decides with in one step — the topology, the eligible and
   * last-resort sets, the token cache, the decision budget, the load bounds — once the pollers
   * hold the new edges. Server state, so the server's to do.
   */
  swapDecisionState(p: PreparedSteeringReload, prev: Topology): void;
}

/** Applies a prepared reload over `prev`, the topology it was prepared from. */
export async function applySteeringReload(p: PreparedSteeringReload, prev: Topology, s: SteeringReloadParts): Promise<void> {
  // New connections get the new certificates; open ones keep theirs.
  swapCertificateIfChanged(listenerServer(s.publicApp), p.tls.public);
  swapCertificateIfChanged(listenerServer(s.adminApp), p.tls.admin);
  if (p.clientTlsChanged) for (const c of s.callers) c?.setTls(p.clientTls);

  const moved = s.health.setEdges(p.topology.edges, p.topology.healthParams);
  s.seenPlays.setEdges(p.topology.edges);
  for (const id of moved.removed) {
    const was = prev.edgesById.get(id)!;
    s.metrics.edgeState.remove({ edge: id, isp: was.isp });
    for (const outcome of ['ok', 'error']) s.metrics.pollLatency.remove({ edge: id, outcome });
    s.holdings.update(id, undefined);
    s.loads.forget(id);
  }
  if (p.topology.signingTag !== prev.signingTag) {
    s.catalog.setSigning(p.config.signing);
    s.mpdCache.setPeriodSec(tokenPeriodSec(p.config.signing.ttlSeconds));
  }
  s.swapDecisionState(p, prev);
  for (const e of p.topology.edges) {
    const was = prev.edgesById.get(e.id);
    if (was !== undefined && was.isp !== e.isp) s.metrics.edgeState.remove({ edge: e.id, isp: was.isp });
    s.metrics.edgeState.set({ edge: e.id, isp: e.isp }, EDGE_STATE_VALUE[s.health.get(e.id)!.state]);
  }
  if (moved.added.length + moved.removed.length + moved.restarted.length > 0) s.logger.info(moved, 'edges reloaded');
  if (s.followLogLevel) s.logger.level = p.config.log.level;
  setOpenAdminPaths(s.openPaths, p.config.admin);
  await Promise.all([s.health.setIntervalMs(p.topology.healthIntervalMs), s.seenPlays.setIntervalMs(p.topology.healthIntervalMs)]);
}

function sameCas(a: ReadonlyMap<string, Buffer> | undefined, b: ReadonlyMap<string, Buffer> | undefined): boolean {
  if ((a?.size ?? 0) !== (b?.size ?? 0)) return false;
  for (const [dest, ca] of a ?? []) if (!b!.get(dest)?.equals(ca)) return false;
  return true;
}
