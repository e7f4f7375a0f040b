import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { ClusterConfig, EdgeConfig } from '../common/config.js';
import { edgeField } from '../common/config.js';
import { adminTokenFromEnv } from '../common/admin-auth.js';
import { type ClientTls, type ServiceTlsMaterial, clusterClientTls, loadServiceTls } from '../common/tls.js';
import { VERSION } from '../common/version.js';
import { DiskTier } from './disk-tier.js';
import { EdgeCache } from './edge-cache.js';
import type { EdgeContext } from './edge-context.js';
import { EdgeMetrics } from './edge-metrics.js';
import { FillAgent } from './fill-agent.js';
import { DEFAULT_TIMEOUTS, Upstream, type UpstreamTarget } from './upstream.js';

/** What one edge process serves from and fills: its tiers, upstream, fill agent and their metrics. */
export interface EdgeParts {
  disk: DiskTier;
  metrics: EdgeMetrics;
  upstream: Upstream;
  cache: EdgeCache;
  fill: FillAgent;
  /**
   * Certificates of our listeners, and what we trust and show as a client, as the edge started:
   * the factory keeps the current ones (a reload swaps them there, not here).
   */
  tls: ServiceTlsMaterial;
  clientTls: ClientTls | undefined;
  /** Stops the event-loop delay monitor the fill yields by (close). */
  stopFillLoop(): void;
}

export function upstreamTarget(config: ClusterConfig, edge: EdgeConfig, override?: string): UpstreamTarget {
  if (override) return { kind: 'origin', url: override, signing: config.signing };
  if (edge.parent) {
    const parent = config.edges.find((e) => e.id === edge.parent)!;
    return { kind: 'parent', url: parent.url, signing: config.signing, fallback: { originUrl: config.origin.url, breaker: edge.parentBreaker } };
  }
  return { kind: 'origin', url: config.origin.url, signing: config.signing };
}

/** Builds the parts in the order their metrics register (the order /metrics lists them). */
export function buildEdgeParts(ctx: EdgeContext): EdgeParts {
  const { opts, config, edge, clock, logger, registry, load } = ctx;
  // Metrics sample the tiers lazily, so the cache may be created after them.
  let cache!: EdgeCache;
  const disk = opts.worker?.disk ?? new DiskTier({
    dir: edge.dataDir,
    capacityBytes: edge.diskBytes,
    sliceBytes: edge.sliceBytes,
    logger,
    onEvict: (bytes) => metrics.cacheEvents().evicted?.('disk', bytes),
    poisonReleasedBuffers: opts.poisonReleasedBuffers,
  });
  const metrics = new EdgeMetrics(registry, () => {
    const m = cache.memoryStats();
    // A worker's disk is the node's, reported once by the primary (the node sums the series).
    const d = opts.worker ? { usedBytes: 0, capacityBytes: 0 } : disk.stats();
    return { memory: m.usedBytes, memoryCap: m.capacityBytes, disk: d.usedBytes, diskCap: d.capacityBytes, connections: load.connections };
  });
  // Certificates of our listeners (a bad file stops the start here), and what we trust and show as a client.
  const tls = opts.tls?.service ?? loadServiceTls(edge, edgeField(config, edge.id));
  const clientTls = opts.tls ? opts.tls.client : clusterClientTls(config, tls.identity);
  const target = upstreamTarget(config, edge, opts.upstreamUrl);
  const upstream = new Upstream(target, clock, opts.upstreamTimeouts ?? DEFAULT_TIMEOUTS, undefined, {
    monotonicNow: () => clock.monotonic(),
    logger,
    tls: clientTls,
    events: target.fallback ? metrics.watchParentBreaker(() => upstream.breakerState) : undefined,
  });
  cache = new EdgeCache({
    disk,
    memoryBytes: edge.memoryBytes,
    sliceBytes: edge.sliceBytes,
    upstream,
    clock,
    logger,
    events: metrics.cacheEvents(),
    claims: opts.worker?.claims,
  });

  // Fill yields to clients: a separate delay monitor, reset every second, says when the loop is busy.
  const fillLoopDelay = monitorEventLoopDelay({ resolution: 10 });
  fillLoopDelay.enable();
  const fillLoopReset = setInterval(() => fillLoopDelay.reset(), 1000);
  fillLoopReset.unref();
  const fill = new FillAgent({
    config,
    edge,
    disk,
    clock,
    logger,
    adminToken: opts.adminToken ?? adminTokenFromEnv(),
    tls: clientTls,
    busy: () => fillLoopDelay.percentile(99) / 1e6 > 40,
    onBytes: (source, bytes) => metrics.fillBytes.inc({ source }, bytes),
    onPublished: (key) => cache.adoptFromDisk(key),
  });

  metrics.watchStatus(edge.isp, VERSION, () => {
    const p = fill.progress();
    return { status: load.status(), fillWindowOpen: p.windowOpen, nextFillWindowStart: p.nextWindowStart };
  });
  metrics.watchFill(() => {
    const p = fill.progress();
    return { filesDone: p.files.done, filesTotal: p.files.total, bytesDone: p.bytes.done, bytesTotal: p.bytes.total, held: p.heldTitles.length };
  });
  const stopFillLoop = () => {
    clearInterval(fillLoopReset);
    fillLoopDelay.disable();
  };
  return { disk, metrics, upstream, cache, fill, tls, clientTls, stopFillLoop };
}
