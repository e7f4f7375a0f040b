import { describe, expect, it } from 'vitest';
import { Ring } from '../../src/common/ring.js';
import { type EdgeLoad, computeBounds } from '../../src/steering/bounded-load.js';
import { ExplainInputError, explain, formatExplanation } from '../../src/steering/explain.js';
import { type EdgeHealth, initialHealth } from '../../src/steering/health.js';
import { buildIspTable, buildPrefixSet, longestMatchingPrefix as longestMatch } from '../../src/steering/prefix-table.js';
import type { DecisionContext } from '../../src/steering/ranking.js';

const edges = [
  { id: 'a1', isp: 'isp-a' },
  { id: 'a2', isp: 'isp-a' },
  { id: 'a3', isp: 'isp-a' },
  { id: 'b1', isp: 'isp-b' },
];
const isps = [
  { id: 'isp-a', prefixes: ['10.0.0.0/8', '10.1.0.0/16', '2001:db8::/32'] },
  { id: 'isp-b', prefixes: ['192.0.2.0/24'] },
];
const trustedProxies = ['203.0.113.0/24'];
const ring = new Ring(edges.map((e) => e.id));
const title = 'the-title';
const order = ring.rank(title);
const ownOrder = order.filter((id) => id.startsWith('a'));

const up = (connections: number): EdgeHealth => ({
  ...initialHealth(0),
  state: 'up',
  reason: 'ok',
  lastReport: { status: 'ok', id: 'x', connections, errorRatio: 0 },
});

function setup(opts: { health?: Record<string, EdgeHealth>; loads?: Record<string, number>; holders?: string[]; defaultIsp?: string } = {}) {
  const health = new Map(edges.map((e) => [e.id, opts.health?.[e.id] ?? up(opts.loads?.[e.id] ?? 100)]));
  const eligible = new Set([...health].filter(([, h]) => h.state === 'up').map(([id]) => id));
  const loads = new Map<string, EdgeLoad>(edges.map((e) => [e.id, { connections: opts.loads?.[e.id] ?? 100, bytesPerSec: 0 }]));
  const ctx: DecisionContext<(typeof edges)[number]> = {
    ispTable: buildIspTable(isps),
    defaultIsp: opts.defaultIsp,
    trusted: buildPrefixSet(trustedProxies),
    edgesById: new Map(edges.map((e) => [e.id, e])),
    ring,
    eligible,
    lastResort: new Set(),
    bounds: computeBounds(edges, loads, eligible, 1.25),
    holders: (t) => (t === title && opts.holders ? new Set(opts.holders) : undefined),
  };
  return (ip: string, forwardedFor?: string) => explain({ ip, forwardedFor, title, ctx, isps, trustedProxies, edges, health, balanceFactor: 1.25 });
}

describe('explain', () => {
  it('namesTheLongestPrefixThatMatchedAndTheRingOrder', () => {
    const e = setup()('10.1.2.3');
    expect(e.client).toMatchObject({ address: '10.1.2.3', via: 'socket', trustedProxy: null });
    expect(e.isp).toMatchObject({ id: 'isp-a', prefix: '10.1.0.0/16', how: 'prefix' });
    expect(e.edges.map((x) => [x.id, x.ringPosition])).toEqual(edges.map((x) => [x.id, order.indexOf(x.id) + 1]));
    expect(e.order).toEqual([...ownOrder.map((id) => ({ edge: id, rule: 'ring', overflow: false })), { edge: 'b1', rule: 'ring', overflow: true }]);
    expect(setup()('2001:db8::5').isp.prefix).toBe('2001:db8::/32');
  });

  it('saysWhenTheDefaultIspApplied', () => {
    const e = setup({ defaultIsp: 'isp-b' })('198.51.100.7');
    expect(e.isp).toMatchObject({ id: 'isp-b', prefix: null, how: 'default' });
    expect(e.isp.note).toContain('default ISP isp-b');
    expect(e.order[0]!.edge).toBe('b1');
    const none = setup()('198.51.100.7');
    expect(none.isp).toMatchObject({ id: null, how: 'none' });
    expect(none.isp.note).toContain('no defaultIsp');
  });

  it('saysWhichTrustedProxyHeaderWasBelieved', () => {
    const e = setup()('203.0.113.9', '1.1.1.1, 192.0.2.44');
    expect(e.client).toMatchObject({ ip: '203.0.113.9', address: '192.0.2.44', via: 'x-forwarded-for', trustedProxy: '203.0.113.0/24' });
    expect(e.isp).toMatchObject({ id: 'isp-b', prefix: '192.0.2.0/24' });
    // The same header from an untrusted peer is not believed, and explain says so.
    const u = setup()('10.1.2.3', '192.0.2.44');
    expect(u.client).toMatchObject({ address: '10.1.2.3', via: 'socket' });
    expect(u.client.note).toContain('not a trusted proxy');
  });

  it('saysAMalformedHeaderIsIgnoredAsAWholeAsThePublicRoutesDo', () => {
    // Not a 400: steering ignores such a header, and explain shows what steering does with it.
    const bad = setup()('203.0.113.9', 'not-an-address, 192.0.2.44');
    expect(bad.client).toMatchObject({ address: '203.0.113.9', via: 'socket', trustedProxy: '203.0.113.0/24' });
    expect(bad.client.note).toBe('X-Forwarded-For ignored as a whole: "not-an-address, 192.0.2.44" is not a list of addresses; the client is the socket address 203.0.113.9');
    // Every hop a trusted proxy: the leftmost is the client.
    const all = setup()('203.0.113.9', '203.0.113.7, 203.0.113.8');
    expect(all.client).toMatchObject({ address: '203.0.113.7', via: 'x-forwarded-for' });
    expect(all.client.note).toContain('so is every X-Forwarded-For hop: the client is the leftmost');
  });

  it('showsADownEdgeAsNotOfferedWithItsReason', () => {
    const [first] = ownOrder;
    const down: EdgeHealth = { ...initialHealth(0), state: 'down', reason: 'poll failed: ECONNREFUSED' };
    const e = setup({ health: { [first!]: down } })('10.1.2.3');
    const x = e.edges.find((y) => y.id === first)!;
    expect(x).toMatchObject({ rank: null, rule: null, health: { state: 'down', eligible: false } });
    expect(x.why).toContain('ECONNREFUSED');
    expect(e.order.map((o) => o.edge)).not.toContain(first);
  });

  it('showsAnEdgeOverTheBoundWithItsLoadAndPlacesItLast', () => {
    const [first] = ownOrder;
    const e = setup({ loads: { [first!]: 250, b1: 100 } })('10.1.2.3');
    const x = e.edges.find((y) => y.id === first)!;
    expect(x.load).toMatchObject({ over: true, metric: 'connections', factor: 1.25 });
    expect(x.load!.ratio).toBeCloseTo(250 / 150, 5);
    expect(x).toMatchObject({ rank: 3, rule: 'over-bound' });
    expect(x.why).toContain('over the bound');
  });

  it('showsAHolderFirst', () => {
    const last = ownOrder[ownOrder.length - 1]!;
    const e = setup({ holders: [last] })('10.1.2.3');
    expect(e.order[0]).toEqual({ edge: last, rule: 'holder', overflow: false });
    expect(e.edges.find((y) => y.id === last)).toMatchObject({ holder: true, rank: 1 });
    expect(formatExplanation(e)).toContain(`1. ${last}: holds the title`);
  });

  it('refusesAnIpThatIsNotAnAddress', () => {
    expect(() => setup()('not-an-ip')).toThrow(ExplainInputError);
    expect(() => setup()('10.1.2.3/8')).toThrow('ip: "10.1.2.3/8" is not an IPv4 or IPv6 address');
  });

  it('findsTheLongestMatchingPrefix', () => {
    expect(longestMatch(['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24'], '10.1.2.9')).toBe('10.1.2.0/24');
    expect(longestMatch(['10.0.0.0/8', '0.0.0.0/0'], '11.0.0.1')).toBe('0.0.0.0/0');
    expect(longestMatch(['::ffff:10.0.0.0/104'], '10.9.9.9')).toBe('::ffff:10.0.0.0/104');
    expect(longestMatch(['2001:db8::/32'], '10.0.0.1')).toBeNull();
    // As the table reads prefixes: host bits ignored (the first written of one network named),
    // a prefix that does not parse passed over.
    expect(longestMatch(['10.1.2.3/16', '10.1.0.0/16'], '10.1.9.9')).toBe('10.1.2.3/16');
    expect(longestMatch(['10.1.0.0/+8', '10.0.0.0/8'], '10.1.9.9')).toBe('10.0.0.0/8');
  });
});
