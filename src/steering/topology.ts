import { createHash } from 'node:crypto';
import { type ClusterConfig, ConfigError, type EdgeConfig, type SigningConfig } from '../common/config.js';
import { changedFields, type ReloadOutcome } from '../common/reload.js';
import { Ring } from '../common/ring.js';
import type { HealthParams } from './health.js';
import { type PrefixTable, PrefixTableError, buildIspTable, buildPrefixSet } from './prefix-table.js';

/**
 * What steering decides with, from one cluster file, as one immutable value. A reload builds
 * the next one completely (a bad prefix list is refused here) and the server swaps it in one
 * assignment; a request reads it once, so it never mixes two files' edges, prefixes or keys.
 */
export interface Topology {
  /** The cluster file it was built from. */
  readonly config: ClusterConfig;
  /** Client prefix → ISP id. */
  readonly ispTable: PrefixTable<string>;
  /** ISP of clients no prefix matches (absent: every edge is a first choice). */
  readonly defaultIsp: string | undefined;
  /** Proxies whose X-Forwarded-For is believed; undefined when none is. */
  readonly trusted: PrefixTable<true> | undefined;
  readonly edges: readonly EdgeConfig[];
  readonly edgesById: ReadonlyMap<string, EdgeConfig>;
  /** The ring over every configured edge. */
  readonly ring: Ring;
  readonly signing: SigningConfig;
  /**
   * Changes whenever anything a token depends on does (a key's secret, the active key, the
   * TTL): cached signatures are keyed by it, so none made with the previous keys is served.
   */
  readonly signingTag: string;
  readonly steeringTtlSeconds: number;
  readonly healthIntervalMs: number;
  readonly healthParams: HealthParams;
  /** Retry-After of "no healthy edge": about as long as a down edge takes to come back up. */
  readonly retryAfter: string;
}

/** Builds steering's topology; a prefix list the table cannot hold is a ConfigError naming it. */
export function buildTopology(config: ClusterConfig): Topology {
  const st = config.steering;
  return {
    config,
    ispTable: prefixTable('isps', () => buildIspTable(config.isps)),
    defaultIsp: config.defaultIsp,
    trusted: st.trustedProxies.length > 0 ? prefixTable('steering.trustedProxies', () => buildPrefixSet(st.trustedProxies)) : undefined,
    edges: config.edges,
    edgesById: new Map(config.edges.map((e) => [e.id, e])),
    ring: new Ring(config.edges.map((e) => e.id)),
    signing: config.signing,
    signingTag: createHash('sha256')
      .update(JSON.stringify([config.signing.activeKey, config.signing.ttlSeconds, Object.entries(config.signing.keys).sort()]))
      .digest('base64url')
      .slice(0, 12),
    steeringTtlSeconds: st.steeringTtlSeconds,
    healthIntervalMs: st.healthIntervalMs,
    healthParams: { downAfter: st.downAfter, upAfter: st.upAfter, thresholds: st.thresholds },
    retryAfter: String(Math.max(1, Math.ceil((st.healthIntervalMs * st.upAfter) / 1000))),
  };
}

function prefixTable<T>(field: string, build: () => T): T {
  try {
    return build();
  } catch (err) {
    if (err instanceof PrefixTableError) throw new ConfigError(field, err.message);
    throw err;
  }
}

/** What steering knows of an edge: where clients and polls go, and in which ISP. */
const edgeAsSteeringSeesIt = (e: EdgeConfig) => ({ id: e.id, isp: e.isp, url: e.url, adminUrl: e.adminUrl });

/** Fields a steering process takes on reload (cluster file names). */
const SWAPPABLE: Record<string, (c: ClusterConfig) => unknown> = {
  edges: (c) => c.edges.map(edgeAsSteeringSeesIt),
  isps: (c) => c.isps.map((i) => ({ id: i.id, prefixes: i.prefixes })),
  defaultIsp: (c) => c.defaultIsp,
  'steering.trustedProxies': (c) => c.steering.trustedProxies,
  'steering.healthIntervalMs': (c) => c.steering.healthIntervalMs,
  'steering.downAfter': (c) => c.steering.downAfter,
  'steering.upAfter': (c) => c.steering.upAfter,
  'steering.thresholds': (c) => c.steering.thresholds,
  'steering.steeringTtlSeconds': (c) => c.steering.steeringTtlSeconds,
  'steering.balanceFactor': (c) => c.steering.balanceFactor,
  'steering.incidentTtlSeconds': (c) => c.steering.incidentTtlSeconds,
  'steering.decisionBudget': (c) => c.steering.decisionBudget,
  'signing.keys': (c) => c.signing.keys,
  'signing.activeKey': (c) => c.signing.activeKey,
  'signing.ttlSeconds': (c) => c.signing.ttlSeconds,
  'log.level': (c) => c.log.level,
  admin: (c) => c.admin,
};

/**
 * Fields a running steering cannot take: where it listens, the origin it reads (the catalog,
 * play reports and the dashboard hold it), and the sizes of what it allocated at start.
 */
const RESTART_ONLY: Record<string, (c: ClusterConfig) => unknown> = {
  'steering.url': (c) => c.steering.url,
  'steering.adminUrl': (c) => c.steering.adminUrl,
  'origin.url': (c) => c.origin.url,
  'origin.adminUrl': (c) => c.origin.adminUrl,
  'steering.mpdCacheBytes': (c) => c.steering.mpdCacheBytes,
  'steering.playDedupSeconds': (c) => c.steering.playDedupSeconds,
  'steering.playConfirmSeconds': (c) => c.steering.playConfirmSeconds,
  'steering.maxTrackedPlays': (c) => c.steering.maxTrackedPlays,
  http: (c) => c.http,
};

/**
 * The cluster-file fields that differ between two files, split into those steering swaps in
 * and those that wait for a restart. Certificates are compared by their bytes elsewhere (a
 * re-issued file under the same name is a change the file's text does not show).
 */
export function steeringChanges(prev: ClusterConfig, next: ClusterConfig): ReloadOutcome {
  return { applied: changedFields(prev, next, SWAPPABLE), needsRestart: changedFields(prev, next, RESTART_ONLY) };
}
