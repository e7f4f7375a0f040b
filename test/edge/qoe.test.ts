import { describe, expect, it } from 'vitest';
import { parseCmcdText } from '../../src/common/cmcd.js';
import { ClientThroughput, MIN_MEASURED_BYTES } from '../../src/edge/client-throughput.js';
import { mergeHealth } from '../../src/edge/cluster/node-health.js';
import type { EdgeHealth } from '../../src/edge/edge-health.js';
import { CmsdDynamicHeader } from '../../src/edge/cmsd-header.js';
import { Registry } from 'prom-client';
import { EdgeMetrics } from '../../src/edge/edge-metrics.js';
import { PLAUSIBLE_MAX, QoeTracker, SID_MAX, STARTUP_BOUNDS_MS, emptyQoeBlock, startupBucket, sumQoeBlocks } from '../../src/edge/qoe.js';
import { parsePrometheusText, sumOf } from '../helpers/prom-parse.js';

/** A monotonic clock the test moves. */
function fakeClock(start = 1000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

describe('QoeTracker', () => {
  it('itCountsRequestsMediaStarvationBitrateAndBuffer from what players said', () => {
    const q = new QoeTracker({ now: fakeClock().now });
    q.record(parseCmcdText('ot=m,sid="s1"'));
    q.record(parseCmcdText('ot=v,br=3000,bl=12000,sid="s1"'));
    q.record(parseCmcdText('ot=a,br=128,bs,sid="s1"'));
    q.record(parseCmcdText('br=800,bl=4000')); // no ot, a br: media
    q.record(parseCmcdText('ot=i,br=3000,bl=1')); // an init segment: not media
    q.record(parseCmcdText('ot=v,br=-5,bl=-1')); // nonsense numbers are not summed
    const b = q.snapshot();
    expect(b).toMatchObject({ requests: 6, mediaRequests: 4, starved: 1, brKbpsSum: 3928, brCount: 3, blMsSum: 16000, blCount: 2, sessions: 1 });
    expect(b.startupBoundsMs).toEqual([...STARTUP_BOUNDS_MS]);
    expect(b.startupCounts).toHaveLength(STARTUP_BOUNDS_MS.length + 1);
  });

  it('itLeavesImplausibleValuesOutOfTheSums (review P2-1: one player must not poison an ISP for an hour)', () => {
    const q = new QoeTracker({ now: fakeClock().now });
    q.record(parseCmcdText('ot=v,br=3000,bl=12000'));
    q.record(parseCmcdText('ot=v,br=999999999999999,bl=999999999999999')); // 15 digits: the parser's most
    q.record(parseCmcdText(`ot=v,br=${PLAUSIBLE_MAX.br},bl=${PLAUSIBLE_MAX.bl}`)); // the bounds themselves count
    q.record(parseCmcdText(`ot=v,br=${PLAUSIBLE_MAX.br + 1},bl=${PLAUSIBLE_MAX.bl + 1}`));
    expect(q.snapshot()).toMatchObject({ requests: 4, mediaRequests: 4, brKbpsSum: 3000 + PLAUSIBLE_MAX.br, brCount: 2, blMsSum: 12000 + PLAUSIBLE_MAX.bl, blCount: 2 });
  });

  it('itCountsImplausibleValuesByKeyAndKeepsThemOutOfTheHistograms (reelcdn_edge_cmcd_implausible_total)', async () => {
    const registry = new Registry();
    const metrics = new EdgeMetrics(registry, () => ({ memory: 0, memoryCap: 0, disk: 0, diskCap: 0, connections: 0 }));
    const sink = metrics.watchQoe(new QoeTracker({ now: fakeClock().now }));
    sink.record(parseCmcdText('ot=v,br=3000,bl=12000,mtp=50000,dl=2000'));
    sink.record(parseCmcdText('ot=v,br=999999999999999,bl=600001,mtp=10000001,dl=999999999'));
    sink.record(parseCmcdText('ot=i,br=200001')); // not media: still a value a client sent
    const m = parsePrometheusText(await registry.metrics());
    expect(sumOf(m, 'reelcdn_edge_cmcd_implausible_total', { key: 'br' })).toBe(2);
    expect(sumOf(m, 'reelcdn_edge_cmcd_implausible_total', { key: 'bl' })).toBe(1);
    expect(sumOf(m, 'reelcdn_edge_cmcd_implausible_total', { key: 'mtp' })).toBe(1);
    expect(sumOf(m, 'reelcdn_edge_cmcd_implausible_total', { key: 'dl' })).toBe(1);
    expect(sumOf(m, 'reelcdn_edge_cmcd_bitrate_kbps_count')).toBe(1);
    expect(sumOf(m, 'reelcdn_edge_cmcd_bitrate_kbps_sum')).toBe(3000);
    expect(sumOf(m, 'reelcdn_edge_cmcd_buffer_length_ms_sum')).toBe(12000);
    expect(sumOf(m, 'reelcdn_edge_cmcd_measured_throughput_kbps_sum')).toBe(50000);
    expect(sumOf(m, 'reelcdn_edge_cmcd_deadline_ms_sum')).toBe(2000);
  });

  it('itTimesStartupFromTheFirstSuToTheFirstWithout, once per session', () => {
    const clock = fakeClock();
    const q = new QoeTracker({ now: clock.now });
    q.record(parseCmcdText('sid="a",su,ot=m'));
    clock.advance(300);
    q.record(parseCmcdText('sid="a",su,ot=v')); // still starting: the start stays the first su
    clock.advance(900);
    expect(q.record(parseCmcdText('sid="a",ot=v')).startupMs).toBe(1200);
    clock.advance(100);
    q.record(parseCmcdText('sid="a",su,ot=v')); // a seek later: not a second startup
    clock.advance(100);
    expect(q.record(parseCmcdText('sid="a",ot=v')).startupMs).toBe(-1);
    // A session that never says su has no startup; one over every bound lands in the last bucket.
    q.record(parseCmcdText('sid="b",ot=v'));
    q.record(parseCmcdText('sid="c",su'));
    clock.advance(60_000);
    q.record(parseCmcdText('sid="c"'));
    const counts = q.snapshot().startupCounts;
    expect(counts[startupBucket(1200)]).toBe(1);
    expect(counts[STARTUP_BOUNDS_MS.length]).toBe(1);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(2);
    expect(q.snapshot().sessions).toBe(3);
  });

  it('itKeepsAtMostMaxSessions: the least recently seen go, and count again when they come back', () => {
    const clock = fakeClock();
    const q = new QoeTracker({ now: clock.now, maxSessions: 100 });
    for (let i = 0; i < 10_000; i++) q.record({ sid: `s${i}`, ot: 'v' });
    expect(q.tracked).toBe(100);
    expect(q.snapshot().sessions).toBe(10_000);
    q.record({ sid: 's9999' }); // still tracked
    q.record({ sid: 's0' }); // long evicted: a session again
    expect(q.snapshot().sessions).toBe(10_001);
    // A sid of any length takes at most SID_MAX characters of key.
    q.record({ sid: 'x'.repeat(100_000) });
    q.record({ sid: `${'x'.repeat(SID_MAX)}yyy` });
    expect(q.snapshot().sessions).toBe(10_002);
  });

  it('itCountsActiveSessionsSeenInTheWindow', () => {
    const clock = fakeClock();
    const q = new QoeTracker({ now: clock.now, activeMs: 5 * 60_000 });
    q.record({ sid: 'old' });
    clock.advance(4 * 60_000);
    q.record({ sid: 'mid' });
    q.record({ sid: 'new' });
    expect(q.activeSessions()).toBe(3);
    clock.advance(2 * 60_000);
    expect(q.activeSessions()).toBe(2);
    q.record({ sid: 'old' }); // seen again: active again
    expect(q.activeSessions()).toBe(3);
    clock.advance(10 * 60_000);
    expect(q.activeSessions()).toBe(0);
  });

  it('itSumsBlocks: a node adds its workers up, a worker down adds nothing', () => {
    const a = emptyQoeBlock();
    a.sessions = 2;
    a.requests = 10;
    a.startupCounts[1] = 1;
    const b = { ...emptyQoeBlock(), sessions: 3, requests: 5, starved: 1, brKbpsSum: 100, brCount: 1 };
    b.startupCounts[1] = 2;
    b.startupCounts[9] = 1;
    const s = sumQoeBlocks([a, undefined, b]);
    expect(s).toMatchObject({ sessions: 5, requests: 15, starved: 1, brKbpsSum: 100, brCount: 1 });
    expect(s.startupCounts[1]).toBe(3);
    expect(s.startupCounts[9]).toBe(1);
  });

  it('itGivesANodesHealthTheSumOfItsWorkersQoe (mergeHealth)', () => {
    const worker = (qoe: EdgeHealth['qoe']) => ({ status: 'ok', connections: 0, requestsPerSec: 0, bytesPerSec: 0, errorRatio: 0, windowRequests: 0, eventLoopDelayMs: 0, memory: { usedBytes: 0, capacityBytes: 0 }, byTier: {}, upstream: { url: 'u', inflightSlices: 0 }, qoe }) as unknown as EdgeHealth;
    const one = { ...emptyQoeBlock(), sessions: 1, requests: 4, mediaRequests: 3 };
    const two = { ...emptyQoeBlock(), sessions: 2, requests: 6, mediaRequests: 5 };
    const node = { id: 'e', isp: 'i', version: 'v', uptimeSec: 1, disk: { usedBytes: 0, capacityBytes: 0, pinnedBytes: 0 }, fill: {} as EdgeHealth['fill'], upstream: { url: 'u', inflightSlices: 0 }, draining: false, maxConnections: 10 };
    const h = mergeHealth(node, [
      { worker: 1, pid: 1, restarts: 0, health: worker(one) },
      { worker: 2, pid: 2, restarts: 0, health: worker(two) },
      { worker: 3, pid: 0, restarts: 1 },
    ]);
    expect(h.qoe).toMatchObject({ sessions: 3, requests: 10, mediaRequests: 8 });
    // Always there, even with no worker up.
    expect(mergeHealth(node, [{ worker: 1, pid: 0, restarts: 0 }]).qoe).toEqual(emptyQoeBlock());
  });
});

describe('ClientThroughput', () => {
  it('itEstimatesFromLargeTransfersOnly: small or instant answers say nothing', () => {
    const clock = fakeClock();
    const t = new ClientThroughput({ now: clock.now });
    t.transferred('10.0.0.1', 16 * 1024, 50);
    t.transferred('10.0.0.1', MIN_MEASURED_BYTES, 0.5);
    expect(t.kbps('10.0.0.1')).toBeUndefined();
    expect(t.size).toBe(0);
    t.transferred('10.0.0.1', 1_000_000, 100); // 80,000 kbit/s
    expect(t.kbps('10.0.0.1')).toBe(80_000);
    t.transferred('10.0.0.1', 1_000_000, 200); // 40,000: moved 30 % of the way
    expect(t.kbps('10.0.0.1')).toBe(68_000);
    expect(t.kbps('10.0.0.2')).toBeUndefined();
    expect(t.kbps(undefined)).toBeUndefined();
  });

  it('itForgetsOldEstimatesAndKeepsAtMostMaxClients', () => {
    const clock = fakeClock();
    const t = new ClientThroughput({ now: clock.now, maxClients: 50, maxAgeMs: 60_000 });
    for (let i = 0; i < 5000; i++) t.transferred(`10.0.${i >> 8}.${i & 255}`, 100_000, 10);
    expect(t.size).toBe(50);
    expect(t.kbps('10.0.19.135')).toBe(80_000); // the last one
    expect(t.kbps('10.0.0.0')).toBeUndefined(); // long evicted
    clock.advance(60_001);
    expect(t.kbps('10.0.19.135')).toBeUndefined();
    // An estimate too old starts again from the new sample, not averaged with the old.
    t.transferred('10.0.19.135', 100_000, 100);
    expect(t.kbps('10.0.19.135')).toBe(8000);
  });
});

describe('CmsdDynamicHeader', () => {
  it('itSaysTheEdgeDuressAndEtpToPlayersOnly', () => {
    const clock = fakeClock();
    const t = new ClientThroughput({ now: clock.now });
    let duress = false;
    const h = new CmsdDynamicHeader('edge-a1', () => duress, t);
    expect(h.valueFor('1.2.3.4', true)).toBe('"edge-a1"');
    t.transferred('1.2.3.4', 1_000_000, 100);
    expect(h.valueFor('1.2.3.4', true)).toBe('"edge-a1";etp=80000');
    expect(h.valueFor('1.2.3.4', false)).toBe('"edge-a1"');
    duress = true;
    expect(h.valueFor('1.2.3.4', true)).toBe('"edge-a1";etp=80000;du');
    expect(h.valueFor('5.6.7.8', true)).toBe('"edge-a1";du');
    // The values without etp are made once, not per answer.
    expect(h.valueFor('5.6.7.8', false)).toBe(h.valueFor('9.9.9.9', false));
  });
});
