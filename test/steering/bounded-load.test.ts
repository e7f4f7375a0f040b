import { describe, expect, it } from 'vitest';
import { ConfigError, validateCluster } from '../../src/common/config.js';
import { Ring } from '../../src/common/ring.js';
import {
  type EdgeLoad,
  LoadTracker,
  MIN_MEAN_BYTES_PER_SEC,
  MIN_MEAN_CONNECTIONS,
  computeBounds,
  loadOf,
} from '../../src/steering/bounded-load.js';
import { rankWithRules, spreadKeyOf } from '../../src/steering/ranking.js';

const edges = [
  { id: 'a1', isp: 'isp-a' },
  { id: 'a2', isp: 'isp-a' },
  { id: 'a3', isp: 'isp-a' },
  { id: 'a4', isp: 'isp-a' },
  { id: 'b1', isp: 'isp-b' },
];
const edgesById = new Map(edges.map((e) => [e.id, e]));
const ring = new Ring(edges.map((e) => e.id));
const all = new Set(edges.map((e) => e.id));
const conn = (connections: number, bytesPerSec = 0): EdgeLoad => ({ connections, bytesPerSec });
const loads = (m: Record<string, EdgeLoad>) => new Map(Object.entries(m));

describe('bounded loads: the bound', () => {
  it('anEdgeAtTheBoundIsOverAndOneJustUnderItIsNot', () => {
    // Mean 100 connections: the bound at 1.25 is 125.
    const at = computeBounds(edges, loads({ a1: conn(125), a2: conn(75), a3: conn(100), a4: conn(100) }), all, 1.25);
    expect(at.byEdge.get('a1')).toMatchObject({ over: true, metric: 'connections', ratio: 1.25, bound: { connections: 125 } });
    const under = computeBounds(edges, loads({ a1: conn(124.99), a2: conn(75.01), a3: conn(100), a4: conn(100) }), all, 1.25);
    expect(under.byEdge.get('a1')!.over).toBe(false);
    expect(under.byEdge.get('a1')!.ratio).toBeCloseTo(1.2499, 4);
  });

  it('anEdgeOverTheBoundInBytesAloneIsOver', () => {
    const mb = MIN_MEAN_BYTES_PER_SEC;
    const b = computeBounds(edges, loads({ a1: conn(100, 4 * mb), a2: conn(100, 2 * mb), a3: conn(100, mb), a4: conn(100, mb) }), all, 1.25);
    expect(b.byEdge.get('a1')).toMatchObject({ over: true, metric: 'bytesPerSec', ratio: 2 });
    expect(b.byEdge.get('a2')!.over).toBe(false);
  });

  it('anIdleIspJudgesNoMetric', () => {
    // Three connections on one edge of an idle ISP is not an imbalance worth moving anyone for.
    const b = computeBounds(edges, loads({ a1: conn(3), a2: conn(0), a3: conn(0), a4: conn(0) }), all, 1.25);
    expect(MIN_MEAN_CONNECTIONS).toBeGreaterThan(3 / 4);
    expect(b.byEdge.get('a1')).toMatchObject({ over: false, metric: 'none', ratio: 0 });
  });

  it('theMeanIsOverTheIspsEligibleEdgesOnly', () => {
    // a4 is down: its 400 connections do not count, and the others' mean is 100.
    const eligible = new Set(['a1', 'a2', 'a3', 'b1']);
    const b = computeBounds(edges, loads({ a1: conn(130), a2: conn(100), a3: conn(70), a4: conn(400), b1: conn(5) }), eligible, 1.25);
    expect(b.byEdge.get('a1')!.mean.connections).toBe(100);
    expect(b.byEdge.get('a1')!.over).toBe(true);
    // Each ISP has its own mean: b1 alone is its ISP's mean.
    expect(b.byEdge.get('b1')!.mean.connections).toBe(5);
  });

  it('twoMetricsCannotPutEveryEdgeOverTheBound', () => {
    // a1 is 1.5× the mean in connections, a2 1.5× in bytes/s: each is over on one metric, so
    // every edge of the ISP is over, and then none is judged over.
    const mb = MIN_MEAN_BYTES_PER_SEC;
    const two = [
      { id: 'a1', isp: 'isp-a' },
      { id: 'a2', isp: 'isp-a' },
    ];
    const b = computeBounds(two, loads({ a1: conn(150, mb), a2: conn(50, 3 * mb) }), new Set(['a1', 'a2']), 1.25);
    expect(b.byEdge.get('a1')).toMatchObject({ over: false, waived: true, metric: 'connections', ratio: 1.5 });
    expect(b.byEdge.get('a2')).toMatchObject({ over: false, waived: true, metric: 'bytesPerSec', ratio: 1.5 });
    // Holders stay preferred, and a player on either stays.
    const byId = new Map(two.map((e) => [e.id, e]));
    const r = rankWithRules({ title: 't', isp: 'isp-a', edgesById: byId, ring: new Ring(['a1', 'a2']), eligible: new Set(['a1', 'a2']), holders: new Set(['a2']), bounds: b });
    expect(r.map((x) => [x.edge.id, x.rule])).toEqual([
      ['a2', 'holder'],
      ['a1', 'ring'],
    ]);
    // With a third edge under the bound, the two are over and it takes the new sessions.
    const three = [...two, { id: 'a3', isp: 'isp-a' }];
    const c = computeBounds(three, loads({ a1: conn(150, mb), a2: conn(50, 3 * mb), a3: conn(100, 2 * mb) }), new Set(['a1', 'a2', 'a3']), 1.25);
    expect(['a1', 'a2', 'a3'].map((id) => c.byEdge.get(id)!.over)).toEqual([true, true, false]);
  });

  it('withAFactorAboveOneSomeEdgeOfEveryIspIsUnderTheBound', () => {
    // Random loads on two metrics, 2 to 6 eligible edges: never every edge over.
    let seed = 12345;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let k = 0; k < 2000; k++) {
      const n = 2 + Math.floor(rnd() * 5);
      const es = Array.from({ length: n }, (_, i) => ({ id: `e${i}`, isp: 'x' }));
      const l = new Map(es.map((e) => [e.id, conn(rnd() < 0.2 ? 0 : Math.floor(rnd() * 400), rnd() * 8 * MIN_MEAN_BYTES_PER_SEC)]));
      const b = computeBounds(es, l, new Set(es.map((e) => e.id)), 1 + rnd() * 0.5 + 1e-9);
      expect(es.some((e) => !b.byEdge.get(e.id)!.over), JSON.stringify([...l])).toBe(true);
    }
  });

  it('theLoadIsTheLatestReportAndWhatIsNotANumberCountsAsZero', () => {
    const t = new LoadTracker();
    t.observe('a1', { connections: 300, bytesPerSec: 9e6 });
    t.observe('a1', { connections: 137, bytesPerSec: 1_234_567.891 });
    expect(t.get('a1')).toEqual({ connections: 137, bytesPerSec: 1_234_567.891 });
    expect(loadOf({ connections: Number.NaN, bytesPerSec: -5 })).toEqual({ connections: 0, bytesPerSec: 0 });
    expect(loadOf({ connections: 7 })).toEqual({ connections: 7, bytesPerSec: 0 });
  });
});

describe('bounded loads: ranking', () => {
  const title = 'hot-title';
  const order = ring.rank(title).filter((id) => id.startsWith('a'));
  const base = { title, isp: 'isp-a', edgesById, ring, eligible: all };

  it('newSessionsSkipAnEdgeOverTheBoundForTheNextOnTheRing', () => {
    const [first, second] = order;
    const l: Record<string, EdgeLoad> = {};
    for (const id of order) l[id] = conn(100);
    l[first!] = conn(200);
    const bounds = computeBounds(edges, loads(l), all, 1.25);
    const r = rankWithRules({ ...base, bounds });
    expect(r[0]).toMatchObject({ edge: { id: second }, rule: 'ring' });
    // Not dropped: it is the ISP's last choice, before any other ISP's edge.
    expect(r.map((x) => x.edge.id)).toEqual([...order.slice(1), first, 'b1']);
    expect(r[3]).toMatchObject({ edge: { id: first }, rule: 'over-bound', overflow: false });
    expect(r[4]).toMatchObject({ edge: { id: 'b1' }, rule: 'ring', overflow: true });
  });

  it('holdersStayPreferredAmongEdgesUnderTheBound', () => {
    const [first, second, third] = order;
    const holders = new Set([third!, second!]);
    const l: Record<string, EdgeLoad> = {};
    for (const id of order) l[id] = conn(100);
    l[second!] = conn(160); // a holder, but over the bound
    const bounds = computeBounds(edges, loads(l), all, 1.25);
    const r = rankWithRules({ ...base, holders, spreadKey: 7, bounds });
    expect(r.map((x) => [x.edge.id, x.rule])).toEqual([
      [third, 'holder'],
      [first, 'ring'],
      [order[3], 'ring'],
      [second, 'over-bound'],
      ['b1', 'ring'],
    ]);
  });

  it('anIspWhoseEveryEdgeIsAtTheBoundRanksAsIfUnbounded', () => {
    // With factor 1 and equal loads every edge is at the bound: none is judged over, so the
    // holders stay first and the ring decides the rest.
    const l: Record<string, EdgeLoad> = {};
    for (const id of order) l[id] = conn(100);
    const bounds = computeBounds(edges, loads(l), all, 1);
    expect(bounds.byEdge.get(order[0]!)).toMatchObject({ over: false, waived: true, ratio: 1 });
    const r = rankWithRules({ ...base, bounds, holders: new Set([order[2]!]) });
    expect(r.map((x) => [x.edge.id, x.rule])).toEqual([[order[2], 'holder'], [order[0], 'ring'], [order[1], 'ring'], [order[3], 'ring'], ['b1', 'ring']]);
  });

  it('removingAnEdgeMovesOnlyItsSessions', () => {
    // 2,000 clients × 50 titles, half the titles held by 3 edges: take a2 away.
    const titles = Array.from({ length: 50 }, (_, i) => `t-${i}`);
    const holdersOf = (t: string) => (Number(t.slice(2)) % 2 === 0 ? new Set(['a1', 'a2', 'a3']) : undefined);
    const balanced = loads({ a1: conn(100), a2: conn(100), a3: conn(100), a4: conn(100), b1: conn(100) });
    const without = new Set([...all].filter((id) => id !== 'a2'));
    const boundsOf = new Map([all, without].map((set) => [set, computeBounds(edges, balanced, set, 1.25)]));
    const firstFor = (eligible: Set<string>, t: string, client: string) =>
      rankWithRules({ ...base, title: t, eligible, holders: holdersOf(t), spreadKey: spreadKeyOf(client), bounds: boundsOf.get(eligible) })[0]!.edge.id;
    let moved = 0;
    let kept = 0;
    const wrong: string[] = [];
    for (let c = 0; c < 2000; c++) {
      const client = `10.0.${c >> 8}.${c & 255}`;
      for (const t of titles) {
        const before = firstFor(all, t, client);
        const after = firstFor(without, t, client);
        if (before === 'a2') moved++;
        else kept++;
        if (after === 'a2' || (before !== 'a2' && after !== before)) wrong.push(`${client} ${t}: ${before} → ${after}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(moved).toBeGreaterThan(0.15 * (moved + kept));
    expect(kept).toBeGreaterThan(0.5 * (moved + kept));
  });

  it('aReplicaStartedLateRanksAsOneThatReadEveryChangingReport', () => {
    // Loads move between polls (a1 drains, a3 fills up); a second replica starts after four of
    // the five rounds. After the same last round both must rank alike: the decision reads the
    // latest reports only, not the history each replica happened to poll.
    const rounds = [
      { a1: [400, 30e6], a2: [120, 9e6], a3: [60, 2e6], a4: [80, 4e6] },
      { a1: [330, 24e6], a2: [130, 9e6], a3: [90, 5e6], a4: [85, 4e6] },
      { a1: [250, 18e6], a2: [120, 8e6], a3: [150, 9e6], a4: [90, 5e6] },
      { a1: [160, 11e6], a2: [110, 8e6], a3: [230, 16e6], a4: [95, 5e6] },
      { a1: [100, 7e6], a2: [105, 8e6], a3: [310, 24e6], a4: [100, 6e6] },
    ].map((r) => Object.entries(r).map(([id, [c, b]]) => [id, { connections: c!, bytesPerSec: b! }] as const));
    const early = new LoadTracker();
    const late = new LoadTracker();
    rounds.forEach((round, i) => {
      for (const [id, r] of round) early.observe(id, r);
      if (i === rounds.length - 1) for (const [id, r] of round) late.observe(id, r);
    });
    const boundsEarly = computeBounds(edges, early.all(), all, 1.25);
    const boundsLate = computeBounds(edges, late.all(), all, 1.25);
    expect(boundsEarly).toEqual(boundsLate);
    // The last round is what counts: a3 is over now, a1 (the busiest before) is not.
    expect(boundsLate.byEdge.get('a3')!.over).toBe(true);
    expect(boundsLate.byEdge.get('a1')!.over).toBe(false);
    let differ = 0;
    for (let k = 0; k < 1000; k++) {
      const input = { ...base, title: `title-${k}`, spreadKey: k * 7919, holders: k % 3 === 0 ? new Set(['a1', 'a3']) : undefined };
      if (JSON.stringify(rankWithRules({ ...input, bounds: boundsEarly })) !== JSON.stringify(rankWithRules({ ...input, bounds: boundsLate }))) differ++;
    }
    expect(differ).toBe(0);
  });

  it('anEdgeThatWentDownIsForgottenAndJudgedByItsNewReports', () => {
    const t = new LoadTracker();
    t.observe('a1', { connections: 900, bytesPerSec: 50e6 });
    t.forget('a1'); // down
    expect(t.get('a1')).toBeUndefined();
    t.observe('a1', { connections: 100, bytesPerSec: 5e6 });
    expect(t.get('a1')).toEqual({ connections: 100, bytesPerSec: 5e6 });
  });
});

describe('cluster file: balance fields', () => {
  const cluster = (steering: Record<string, unknown> = {}) => ({
    signing: { keys: { k1: 'bounded-load-secret-0123456789' }, activeKey: 'k1' },
    origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:2', dataDir: 'origin' },
    steering: { url: 'http://127.0.0.1:3', adminUrl: 'http://127.0.0.1:4', ...steering },
    isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
    edges: [{ id: 'e1', isp: 'isp-a', url: 'http://127.0.0.1:5', adminUrl: 'http://127.0.0.1:6', dataDir: 'e1', diskBytes: 1e6, memoryBytes: 1e6 }],
  });

  it('defaultsBalanceFactorIncidentTtlAndNoBudget', () => {
    expect(validateCluster(cluster(), '/tmp').steering).toMatchObject({ balanceFactor: 1.25, incidentTtlSeconds: 2, decisionBudget: { perSecond: 0, burst: 0 } });
    expect(validateCluster(cluster({ balanceFactor: 1, decisionBudget: { perSecond: 500 } }), '/tmp').steering).toMatchObject({
      balanceFactor: 1,
      decisionBudget: { perSecond: 500, burst: 500 },
    });
  });

  it.each([
    [{ balanceFactor: 0.99 }, 'steering.balanceFactor', 'at least 1'],
    [{ balanceFactor: '1.5' }, 'steering.balanceFactor', 'at least 1'],
    [{ incidentTtlSeconds: 0 }, 'steering.incidentTtlSeconds', 'positive integer'],
    [{ decisionBudget: { perSecond: -1 } }, 'steering.decisionBudget.perSecond', 'non-negative'],
    [{ decisionBudget: { perSecond: 10, burst: 0 } }, 'steering.decisionBudget.burst', 'positive'],
  ])('aBadValueIsAConfigErrorNamingTheField %#', (steering, field, words) => {
    let err: unknown;
    try {
      validateCluster(cluster(steering), '/tmp');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe(field);
    expect((err as ConfigError).message).toContain(words);
  });
});
