import { describe, expect, it } from 'vitest';
import { Counter, Gauge, Registry } from 'prom-client';
import { mergeHealth } from '../../../src/edge/cluster/node-health.js';
import { nodeMetricsText } from '../../../src/edge/cluster/node-metrics.js';
import { emptyQoeBlock } from '../../../src/edge/qoe.js';
import { restartDelayMs } from '../../../src/edge/cluster/supervisor.js';
import type { EdgeHealth } from '../../../src/edge/server.js';
import { parsePrometheusText, sumOf } from '../../helpers/prom-parse.js';

function workerHealth(over: Partial<EdgeHealth>): EdgeHealth {
  return {
    status: 'ok',
    id: 'e',
    isp: 'i',
    version: 'v',
    uptimeSec: 1,
    connections: 0,
    requestsPerSec: 0,
    bytesPerSec: 0,
    errorRatio: 0,
    windowRequests: 0,
    eventLoopDelayMs: 0,
    memory: { usedBytes: 0, capacityBytes: 100 },
    disk: { usedBytes: 5, capacityBytes: 1000, pinnedBytes: 0 },
    hitRatio: { requests: 0, bytes: 0 },
    byTier: { 'HIT-MEM': { requests: 0, bytes: 0 }, 'HIT-DISK': { requests: 0, bytes: 0 }, 'HIT-FILL': { requests: 0, bytes: 0 }, MISS: { requests: 0, bytes: 0 } },
    upstream: { url: 'http://o', inflightSlices: 0 },
    qoe: emptyQoeBlock(),
    fill: { state: 'idle', windowOpen: false, nextWindowStart: '', heldTitles: [], manifestVersion: undefined, filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0 } as unknown as EdgeHealth['fill'],
    ...over,
  };
}

const nodePart = {
  id: 'edge-a1',
  isp: 'isp-a',
  version: '1',
  uptimeSec: 9,
  disk: { usedBytes: 50, capacityBytes: 1000, pinnedBytes: 7 },
  fill: workerHealth({}).fill,
  upstream: { url: 'http://origin', inflightSlices: 0 },
  draining: false,
  maxConnections: 100,
};

describe('mergeHealth', () => {
  it('sums volumes, weighs the error ratio by answers, takes the worst loop, and the disk from the primary', () => {
    const a = workerHealth({
      connections: 10,
      requestsPerSec: 5,
      bytesPerSec: 500,
      errorRatio: 0.5,
      windowRequests: 20,
      eventLoopDelayMs: 3,
      memory: { usedBytes: 30, capacityBytes: 100 },
      byTier: { 'HIT-MEM': { requests: 6, bytes: 60 }, 'HIT-DISK': { requests: 0, bytes: 0 }, 'HIT-FILL': { requests: 0, bytes: 0 }, MISS: { requests: 2, bytes: 20 } },
      upstream: { url: 'http://o', inflightSlices: 1 },
    });
    const b = workerHealth({
      connections: 5,
      requestsPerSec: 1,
      bytesPerSec: 100,
      errorRatio: 0,
      windowRequests: 80,
      eventLoopDelayMs: 12,
      memory: { usedBytes: 40, capacityBytes: 100 },
      byTier: { 'HIT-MEM': { requests: 0, bytes: 0 }, 'HIT-DISK': { requests: 2, bytes: 20 }, 'HIT-FILL': { requests: 0, bytes: 0 }, MISS: { requests: 0, bytes: 0 } },
      upstream: { url: 'http://o', inflightSlices: 2 },
    });
    const h = mergeHealth(nodePart, [
      { worker: 1, pid: 11, restarts: 0, health: a },
      { worker: 2, pid: 12, restarts: 3, health: b },
    ]);
    expect(h.status).toBe('ok');
    expect(h.connections).toBe(15);
    expect(h.requestsPerSec).toBe(6);
    expect(h.bytesPerSec).toBe(600);
    expect(h.windowRequests).toBe(100);
    expect(h.errorRatio).toBeCloseTo(0.1);
    expect(h.eventLoopDelayMs).toBe(12);
    expect(h.memory).toEqual({ usedBytes: 70, capacityBytes: 200 });
    expect(h.disk).toEqual(nodePart.disk);
    expect(h.byTier['HIT-MEM'].requests).toBe(6);
    expect(h.byTier.MISS.requests).toBe(2);
    expect(h.hitRatio.requests).toBeCloseTo(0.8);
    expect(h.upstream.inflightSlices).toBe(3);
    expect(h.workers).toEqual([
      { worker: 1, pid: 11, status: 'ok', restarts: 0, connections: 10, requestsPerSec: 5, eventLoopDelayMs: 3 },
      { worker: 2, pid: 12, status: 'ok', restarts: 3, connections: 5, requestsPerSec: 1, eventLoopDelayMs: 12 },
    ]);
  });

  it('is overloaded when most workers are, or over the connection threshold; draining wins', () => {
    const over = workerHealth({ status: 'overloaded' });
    const ok = workerHealth({});
    expect(mergeHealth(nodePart, [{ worker: 1, pid: 1, restarts: 0, health: over }, { worker: 2, pid: 2, restarts: 0, health: ok }]).status).toBe('ok');
    expect(mergeHealth(nodePart, [{ worker: 1, pid: 1, restarts: 0, health: over }, { worker: 2, pid: 2, restarts: 0, health: over }]).status).toBe('overloaded');
    expect(mergeHealth(nodePart, [{ worker: 1, pid: 1, restarts: 0, health: workerHealth({ connections: 101 }) }]).status).toBe('overloaded');
    expect(mergeHealth({ ...nodePart, draining: true }, [{ worker: 1, pid: 1, restarts: 0, health: over }]).status).toBe('draining');
    // No worker answering: nothing to send clients to.
    const none = mergeHealth(nodePart, [{ worker: 1, pid: 0, restarts: 2 }]);
    expect(none.status).toBe('overloaded');
    expect(none.workers[0]!.status).toBe('down');
  });
});

describe('nodeMetricsText', () => {
  it('sums the workers under the usual names, takes status from the primary, and labels per-worker series', async () => {
    const registries = [0, 1, 2].map(() => new Registry());
    const [primary, w1, w2] = registries as [Registry, Registry, Registry];
    for (const r of registries) {
      new Counter({ name: 'reelcdn_edge_requests_total', help: 'h', labelNames: ['tier', 'status'], registers: [r] });
      new Gauge({ name: 'reelcdn_edge_health_status', help: 'h', labelNames: ['status'], registers: [r], aggregator: 'first' });
    }
    (w1.getSingleMetric('reelcdn_edge_requests_total') as Counter).inc({ tier: 'MISS', status: '200' }, 3);
    (w2.getSingleMetric('reelcdn_edge_requests_total') as Counter).inc({ tier: 'MISS', status: '200' }, 4);
    (w2.getSingleMetric('reelcdn_edge_requests_total') as Counter).inc({ tier: 'HIT-MEM', status: '200' }, 1);
    (primary.getSingleMetric('reelcdn_edge_health_status') as Gauge).set({ status: 'draining' }, 1);
    for (const w of [w1, w2]) (w.getSingleMetric('reelcdn_edge_health_status') as Gauge).set({ status: 'ok' }, 1);
    const scrape = async (r: Registry, worker: number) => ({
      worker,
      metrics: await r.getMetricsAsJSON(),
      cpuSeconds: worker,
      rssBytes: 1000 * worker,
      connections: worker,
      eventLoopDelaySeconds: 0.001,
      restarts: worker - 1,
    });
    const text = await nodeMetricsText(primary, [await scrape(w1, 1), await scrape(w2, 2)], { service: 'edge', node: 'e1' });
    const e = parsePrometheusText(text);
    expect(sumOf(e, 'reelcdn_edge_requests_total')).toBe(8);
    expect(sumOf(e, 'reelcdn_edge_requests_total', { tier: 'MISS' })).toBe(7);
    expect(sumOf(e, 'reelcdn_edge_health_status', { status: 'draining' })).toBe(1);
    expect(sumOf(e, 'reelcdn_edge_worker_requests_total', { worker: '1' })).toBe(3);
    expect(sumOf(e, 'reelcdn_edge_worker_requests_total', { worker: '2' })).toBe(5);
    expect(sumOf(e, 'reelcdn_edge_worker_restarts_total', { worker: '2' })).toBe(1);
    expect(sumOf(e, 'reelcdn_edge_worker_resident_memory_bytes')).toBe(3000);
    expect(sumOf(e, 'reelcdn_edge_worker_up')).toBe(2);
  });
});

describe('restartDelayMs', () => {
  it('restarts a worker that lived long at once, and backs off one that keeps dying young', () => {
    expect(restartDelayMs(60_000, 0)).toBe(100);
    expect(restartDelayMs(100, 0)).toBe(100);
    expect(restartDelayMs(100, 1)).toBe(200);
    expect(restartDelayMs(100, 3)).toBe(800);
    expect(restartDelayMs(100, 50)).toBe(10_000);
  });
});
