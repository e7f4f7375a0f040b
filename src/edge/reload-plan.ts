import { isDeepStrictEqual } from 'node:util';
import { type ClusterConfig, ConfigError, type EdgeConfig } from '../common/config.js';
import { sameTlsMaterial } from '../common/listener-server.js';
import { changedFields } from '../common/reload.js';
import { type ClientTls, type ServiceTlsMaterial, type TlsMaterial, clusterClientTls, loadServiceTls } from '../common/tls.js';
import { parseWindow } from './fill-window.js';

/** A configuration as one edge node runs it: the cluster file and its own entry in it. */
export interface EdgeView {
  config: ClusterConfig;
  edge: EdgeConfig;
}

/** What an edge makes of a reloaded cluster file, before it reads a certificate. */
export interface EdgeReloadPlan {
  /**
   * The new file as this edge runs it: restart-only values (origin.url, the parent's url, http)
   * still the ones it started with, and its own entry as `edge`. What a worker started after
   * the reload is given, so that it works like the others.
   */
  config: ClusterConfig;
  /** Its entry in the new file (restart-only fields still at the values it runs with). */
  edge: EdgeConfig;
  /** That entry's place in the new file, `edges[2]`: what its fields are named after. */
  field: string;
  /** Changed fields the edge takes now. */
  applied: string[];
  /** Changed fields it runs with the old values of until a restart. */
  needsRestart: string[];
}

/**
 * Fields an edge fixes at start: its listeners, its tiers' sizes and layout, its process count,
 * where misses go (and the parent breaker, built once with the parent's pool), the `isp` label
 * its metrics carry, the connection limits of its ports.
 */
const RESTART_EDGE_FIELDS = ['url', 'adminUrl', 'dataDir', 'diskBytes', 'memoryBytes', 'sliceBytes', 'workers', 'parent', 'parentBreaker', 'isp'] as const;

/**
 * Decides a reload of edge `id` from the file it booted with (what restart-only fields still
 * are) and the one last applied (what the live fields are), without touching anything: the
 * caller loads the certificates next, then applies. A restart-only field keeps being reported
 * on every reload until the process restarts. An edge the new file no longer lists is a
 * refusal: it would have nothing to serve by.
 */
export function planEdgeReload(boot: EdgeView, last: EdgeView, next: ClusterConfig): EdgeReloadPlan {
  const id = boot.edge.id;
  const i = next.edges.findIndex((e) => e.id === id);
  if (i < 0) throw new ConfigError('edges', `"${id}" is no longer in the cluster file; this edge keeps its configuration until it is stopped`);
  const field = `edges[${i}]`;
  const found = next.edges[i]!;
  const byId = (c: ClusterConfig) => c.edges.find((e) => e.id === id)!;

  const restart: Record<string, (c: ClusterConfig) => unknown> = {};
  for (const f of RESTART_EDGE_FIELDS) restart[`${field}.${f}`] = (c) => byId(c)[f];
  // Misses go to the origin, or to the parent with the origin behind it: pools made at start.
  restart['origin.url'] = (c) => c.origin.url;
  const parent = boot.edge.parent;
  if (parent !== undefined) {
    // Gone from the file: this edge's `parent` changed too, and says so.
    const j = next.edges.findIndex((e) => e.id === parent);
    if (j >= 0) restart[`edges[${j}].url`] = (c) => c.edges.find((e) => e.id === parent)?.url;
  }
  restart.http = (c) => c.http;

  const live: Record<string, (c: ClusterConfig) => unknown> = {
    signing: (c) => c.signing,
    [`${field}.fill`]: (c) => byId(c).fill,
    [`${field}.timezone`]: (c) => byId(c).timezone,
    // Read on every prefetch the edge considers.
    [`${field}.prefetch`]: (c) => byId(c).prefetch,
    [`${field}.tls`]: (c) => byId(c).tls,
    [`${field}.adminTls`]: (c) => byId(c).adminTls,
    // The fill asks the origin's admin port for its manifest.
    'origin.adminUrl': (c) => c.origin.adminUrl,
    admin: (c) => c.admin,
    // When this edge calls itself overloaded.
    'steering.thresholds.maxConnections': (c) => c.steering.thresholds.maxConnections,
    'log.level': (c) => c.log.level,
  };

  const edge = { ...found };
  for (const f of RESTART_EDGE_FIELDS) {
    if (boot.edge[f] === undefined) delete edge[f];
    else (edge as Record<string, unknown>)[f] = boot.edge[f];
  }
  const config: ClusterConfig = {
    ...next,
    origin: { ...next.origin, url: boot.config.origin.url },
    http: boot.config.http,
    edges: next.edges.map((e) => {
      if (e.id === id) return edge;
      const was = parent !== undefined && e.id === parent ? boot.config.edges.find((b) => b.id === parent) : undefined;
      return was ? { ...e, url: was.url } : e;
    }),
  };
  return {
    config,
    edge,
    field,
    applied: changedFields(last.config, next, live),
    needsRestart: changedFields(boot.config, next, restart),
  };
}

/** What a running edge serves and shows now: a reload is compared against it. */
export interface EdgeTlsState {
  tls: ServiceTlsMaterial;
  clientTls: ClientTls | undefined;
}

/**
 * A reload of one edge, everything that can refuse it done: the plan, every certificate of the
 * node read and checked, the trust toward the origin, parent and peers built, the fill window
 * parsed. Applying it reads no file and cannot fail, so a node's primary prepares it once and
 * its workers apply the same bytes (a certificate renewed on disk meanwhile changes nothing).
 * A structured clone survives the trip to a worker (Buffers, Maps and Dates do).
 */
export interface PreparedEdgeReload extends EdgeReloadPlan, EdgeTlsState {
  /** `clientTls` differs from what the edge had: its pools toward the origin, parent and peers are rebuilt. */
  clientTlsChanged: boolean;
}

/**
 * Prepares a reload of edge `boot.edge.id` (see PreparedEdgeReload) from the file it booted
 * with, the one last applied and what it serves now. Throws a ConfigError naming the field —
 * and then nothing anywhere has changed.
 */
export function prepareEdgeReload(boot: EdgeView, last: EdgeView, now: EdgeTlsState, next: ClusterConfig): PreparedEdgeReload {
  const plan = planEdgeReload(boot, last, next);
  const tls = loadServiceTls(plan.edge, plan.field);
  const clientTls = clusterClientTls(next, tls.identity);
  try {
    parseWindow(plan.edge.fill.window, plan.edge.timezone);
  } catch (err) {
    throw new ConfigError(`${plan.field}.fill.window`, (err as Error).message);
  }
  const note = (f: string) => {
    if (!plan.applied.includes(f)) plan.applied.push(f);
  };
  // A file re-issued in place (same path, new bytes) is as much a change as a new path.
  if (!sameTlsMaterial(now.tls.public, tls.public) || !sameTlsMaterial(now.tls.identity, tls.identity)) note(`${plan.field}.tls`);
  if (!sameTlsMaterial(now.tls.admin, tls.admin)) note(`${plan.field}.adminTls`);
  const clientTlsChanged = !isDeepStrictEqual(now.clientTls, clientTls);
  if (clientTlsChanged) note('client tls');
  return { ...plan, tls: served(now.tls, tls), clientTls, clientTlsChanged };
}

/**
 * What each listener serves after the reload: the new material where it serves TLS; a listener
 * whose URL's scheme changed keeps what it has until the restart (that is in needsRestart).
 */
function served(was: ServiceTlsMaterial, now: ServiceTlsMaterial): ServiceTlsMaterial {
  const pick = (a: TlsMaterial | undefined, b: TlsMaterial | undefined) => (a && b ? b : a);
  const pub = pick(was.public, now.public);
  const admin = pick(was.admin, now.admin);
  return { ...(pub ? { public: pub } : {}), ...(admin ? { admin } : {}), ...(now.identity ? { identity: now.identity } : {}) };
}

/** `config` with `edge` in place of its own entry (found by id). */
export function withEdge(config: ClusterConfig, edge: EdgeConfig): ClusterConfig {
  return { ...config, edges: config.edges.map((e) => (e.id === edge.id ? edge : e)) };
}
