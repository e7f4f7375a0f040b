import { TIERS, type Tier } from '../edge-cache.js';
import type { EdgeHealth, EdgeStatus } from '../server.js';
import { type QoeBlock, sumQoeBlocks } from '../qoe.js';

/** One worker as the node's /health lists it. */
export interface WorkerSummary {
  worker: number;
  pid: number;
  status: EdgeStatus | 'down';
  restarts: number;
  connections: number;
  requestsPerSec: number;
  eventLoopDelayMs: number;
}

export type NodeHealth = EdgeHealth & { workers: WorkerSummary[] };

/**
 * The node's /health from its workers' own (each counts its answers and connections) and the
 * primary's view of what is shared: the disk tier, the fill, the drain. Steering reads it as it
 * reads a one-process edge: sums for volumes, the error ratio over all answers, the worst loop.
 * Pure.
 */
export function mergeHealth(
  node: Pick<EdgeHealth, 'id' | 'isp' | 'version' | 'uptimeSec' | 'disk' | 'fill' | 'upstream'> & {
    draining: boolean;
    maxConnections: number;
    /** The node's block as the primary carries it (node-qoe.ts: it only goes up); default the answering workers' sum. */
    qoe?: QoeBlock;
  },
  workers: { worker: number; pid: number; restarts: number; health?: EdgeHealth }[],
): NodeHealth {
  const up = workers.flatMap((w) => (w.health ? [w.health] : []));
  const sum = (f: (h: EdgeHealth) => number) => up.reduce((n, h) => n + f(h), 0);
  const byTier = Object.fromEntries(TIERS.map((t) => [t, { requests: 0, bytes: 0 }])) as Record<Tier, { requests: number; bytes: number }>;
  for (const h of up) {
    for (const t of TIERS) {
      byTier[t].requests += h.byTier[t]?.requests ?? 0;
      byTier[t].bytes += h.byTier[t]?.bytes ?? 0;
    }
  }
  const allReq = TIERS.reduce((n, t) => n + byTier[t].requests, 0);
  const allBytes = TIERS.reduce((n, t) => n + byTier[t].bytes, 0);
  const windowRequests = sum((h) => h.windowRequests);
  const connections = sum((h) => h.connections);
  const overloaded = up.filter((h) => h.status === 'overloaded').length;
  // Overloaded as a node when most workers are (one busy worker still leaves room), or when the
  // node's connections pass steering's threshold, as a one-process edge would.
  let status: EdgeStatus = 'ok';
  if (node.draining) status = 'draining';
  else if (up.length === 0 || overloaded * 2 > up.length || connections > node.maxConnections) status = 'overloaded';
  return {
    status,
    id: node.id,
    isp: node.isp,
    version: node.version,
    uptimeSec: node.uptimeSec,
    connections,
    requestsPerSec: sum((h) => h.requestsPerSec),
    bytesPerSec: sum((h) => h.bytesPerSec),
    errorRatio: windowRequests === 0 ? 0 : sum((h) => h.errorRatio * h.windowRequests) / windowRequests,
    windowRequests,
    eventLoopDelayMs: up.reduce((m, h) => Math.max(m, h.eventLoopDelayMs), 0),
    memory: { usedBytes: sum((h) => h.memory.usedBytes), capacityBytes: sum((h) => h.memory.capacityBytes) },
    disk: node.disk,
    hitRatio: {
      requests: allReq === 0 ? 0 : (allReq - byTier.MISS.requests) / allReq,
      bytes: allBytes === 0 ? 0 : (allBytes - byTier.MISS.bytes) / allBytes,
    },
    byTier,
    upstream: { url: node.upstream.url, inflightSlices: sum((h) => h.upstream.inflightSlices) },
    fill: node.fill,
    qoe: node.qoe ?? sumQoeBlocks(up.map((h) => h.qoe)),
    workers: workers.map((w) => ({
      worker: w.worker,
      pid: w.pid,
      status: w.health?.status ?? 'down',
      restarts: w.restarts,
      connections: w.health?.connections ?? 0,
      requestsPerSec: w.health?.requestsPerSec ?? 0,
      eventLoopDelayMs: w.health?.eventLoopDelayMs ?? 0,
    })),
  };
}
