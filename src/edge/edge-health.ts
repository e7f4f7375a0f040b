import type { Clock } from '../common/clock.js';
import { VERSION } from '../common/version.js';
import type { Tier } from './edge-cache.js';
import type { FillProgress } from './fill-agent.js';
import type { QoeBlock } from './qoe.js';
import type { TrafficSnapshot } from './traffic-stats.js';

/** ok: steer to it; draining: it is stopping (503 on /health); overloaded: its loop or its connections are over budget. */
export type EdgeStatus = 'ok' | 'draining' | 'overloaded';

/** What an edge's admin /health answers; steering ranks edges by it. */
export interface EdgeHealth {
  status: EdgeStatus;
  id: string;
  isp: string;
  version: string;
  uptimeSec: number;
  connections: number;
  requestsPerSec: number;
  bytesPerSec: number;
  errorRatio: number;
  /** Answers over errorRatio's window (10 s): steering ignores the ratio below a minimum volume. */
  windowRequests: number;
  eventLoopDelayMs: number;
  memory: { usedBytes: number; capacityBytes: number };
  disk: { usedBytes: number; capacityBytes: number; pinnedBytes: number };
  hitRatio: { requests: number; bytes: number };
  byTier: Record<Tier, { requests: number; bytes: number }>;
  upstream: { url: string; inflightSlices: number };
  fill: Pick<FillProgress, 'state' | 'windowOpen' | 'nextWindowStart' | 'heldTitles' | 'manifestVersion'> & {
    filesDone: number;
    filesTotal: number;
    bytesDone: number;
    bytesTotal: number;
  };
  /** What players said (CMCD), cumulative since the start: always present, zeros on an edge no player spoke to. */
  qoe: QoeBlock;
}

/** The samples one health answer is made of; each part may come from another process. */
export interface EdgeHealthParts {
  status: EdgeStatus;
  id: string;
  isp: string;
  /** Monotonic ms the node started at, read against `clock.monotonic()`. */
  startedAt: number;
  clock: Clock;
  connections: number;
  traffic: TrafficSnapshot;
  eventLoopDelayMs: number;
  memory: { usedBytes: number; capacityBytes: number };
  disk: { usedBytes: number; capacityBytes: number; pinnedBytes: number };
  upstream: { url: string; inflightSlices: number };
  fill: FillProgress;
  qoe: QoeBlock;
}

/** Assembles /health from its parts. Pure. */
export function edgeHealth(p: EdgeHealthParts): EdgeHealth {
  const t = p.traffic;
  return {
    status: p.status,
    id: p.id,
    isp: p.isp,
    version: VERSION,
    uptimeSec: Math.round((p.clock.monotonic() - p.startedAt) / 1000),
    connections: p.connections,
    requestsPerSec: t.requestsPerSec,
    bytesPerSec: t.bytesPerSec,
    errorRatio: t.errorRatio,
    windowRequests: t.windowRequests,
    eventLoopDelayMs: Math.round(p.eventLoopDelayMs * 10) / 10,
    memory: { usedBytes: p.memory.usedBytes, capacityBytes: p.memory.capacityBytes },
    disk: { usedBytes: p.disk.usedBytes, capacityBytes: p.disk.capacityBytes, pinnedBytes: p.disk.pinnedBytes },
    hitRatio: t.hitRatio,
    byTier: t.byTier,
    upstream: p.upstream,
    fill: fillHealth(p.fill),
    qoe: p.qoe,
  };
}

/** The fill's part of /health. */
export function fillHealth(f: FillProgress): EdgeHealth['fill'] {
  return {
    state: f.state,
    windowOpen: f.windowOpen,
    nextWindowStart: f.nextWindowStart,
    heldTitles: f.heldTitles,
    manifestVersion: f.manifestVersion,
    filesDone: f.files.done,
    filesTotal: f.files.total,
    bytesDone: f.bytes.done,
    bytesTotal: f.bytes.total,
  };
}
