import { describe, expect, it } from 'vitest';
import { Ring } from '../src/common/ring.js';
import { clientAddress } from '../src/steering/client-address.js';
import { buildIspTable, buildPrefixSet } from '../src/steering/prefix-table.js';
import { ispOf, rankEdges, spreadKeyOf } from '../src/steering/ranking.js';

const edges = [
  { id: 'a1', isp: 'isp-a' },
  { id: 'a2', isp: 'isp-a' },
  { id: 'a3', isp: 'isp-a' },
  { id: 'b1', isp: 'isp-b' },
  { id: 'b2', isp: 'isp-b' },
];
const edgesById = new Map(edges.map((e) => [e.id, e]));
const ring = new Ring(edges.map((e) => e.id));
const all = new Set(edges.map((e) => e.id));

describe('ranking', () => {
  it('itRanksTheClientIspFirstInRingOrderThenOverflow', () => {
    for (const title of ['t1', 't2', 'movie', 'show-9']) {
      const r = rankEdges({ title, isp: 'isp-b', edgesById, ring, eligible: all }).map((e) => e.id);
      const order = ring.rank(title);
      expect(r).toEqual([...order.filter((id) => id.startsWith('b')), ...order.filter((id) => id.startsWith('a'))]);
    }
  });

  it('itLeavesOutEdgesThatAreNotEligible', () => {
    const r = rankEdges({ title: 't1', isp: 'isp-a', edgesById, ring, eligible: new Set(['a2', 'b1']) }).map((e) => e.id);
    expect(r).toEqual(['a2', 'b1']);
    expect(rankEdges({ title: 't1', isp: 'isp-a', edgesById, ring, eligible: new Set() })).toEqual([]);
  });

  it('itOffersEveryEdgeInRingOrderToAClientOfNoIsp', () => {
    const r = rankEdges({ title: 't3', isp: undefined, edgesById, ring, eligible: all }).map((e) => e.id);
    expect(r).toEqual([...ring.rank('t3')]);
  });

  it('itRanksHoldersFirstInsideEachGroup', () => {
    const order = ring.rank('t4').filter((id) => id.startsWith('a'));
    const holder = order[order.length - 1]!;
    const r = rankEdges({ title: 't4', isp: 'isp-a', edgesById, ring, eligible: all, holders: new Set([holder, 'b2']) }).map((e) => e.id);
    expect(r[0]).toBe(holder);
    expect(r[3]).toBe('b2');
  });

  it('itSpreadsClientsOverTheReplicasOfAPopularTitleEachClientStickingToOne', () => {
    const holders = new Set(['a1', 'a2', 'a3']);
    const firstFor = (addr: string) =>
      rankEdges({ title: 'hit', isp: 'isp-a', edgesById, ring, eligible: all, holders, spreadKey: spreadKeyOf(addr) })[0]!.id;
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const addr = `10.${(i >> 8) & 255}.${i & 255}.7`;
      const first = firstFor(addr);
      expect(firstFor(addr)).toBe(first); // the same client always lands on the same replica
      counts.set(first, (counts.get(first) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(['a1', 'a2', 'a3']);
    for (const n of counts.values()) expect(n).toBeGreaterThan(700);
    // A title held by one edge only is not spread.
    const one = rankEdges({ title: 'hit', isp: 'isp-a', edgesById, ring, eligible: all, holders: new Set(['a2']), spreadKey: 12345 });
    expect(one[0]!.id).toBe('a2');
  });

  it('itFallsBackToTheDefaultIsp', () => {
    const t = buildIspTable([{ id: 'isp-a', prefixes: ['10.0.0.0/8'] }]);
    expect(ispOf(t, '10.1.1.1', 'isp-z')).toBe('isp-a');
    expect(ispOf(t, '11.1.1.1', 'isp-z')).toBe('isp-z');
    expect(ispOf(t, '11.1.1.1', undefined)).toBeUndefined();
  });
});

describe('client address', () => {
  const trusted = buildPrefixSet(['10.0.0.0/8', '192.0.2.1/32', '::1/128']);
  it.each<[string, string | undefined, string | string[] | undefined, string]>([
    ['socket when no XFF', '127.0.0.1', undefined, '127.0.0.1'],
    ['socket when peer untrusted', '203.0.113.9', '198.51.100.1', '203.0.113.9'],
    ['XFF from a trusted peer', '10.0.0.1', '198.51.100.1', '198.51.100.1'],
    ['rightmost untrusted hop', '10.0.0.1', '1.1.1.1, 198.51.100.1, 10.2.2.2', '198.51.100.1'],
    ['leftmost when every hop is trusted', '10.0.0.1', '10.9.9.9, 10.8.8.8', '10.9.9.9'],
    ['malformed XFF ignored', '10.0.0.1', 'garbage, 198.51.100.1', '10.0.0.1'],
    ['empty element ignored as malformed', '10.0.0.1', '198.51.100.1,,', '10.0.0.1'],
    ['port stripped', '10.0.0.1', '198.51.100.1:5555', '198.51.100.1'],
    ['bracketed v6', '10.0.0.1', '[2001:db8::7]:443', '2001:db8::7'],
    ['mapped socket address', '::ffff:10.0.0.1', '198.51.100.2', '198.51.100.2'],
    ['mapped socket untrusted normalised', '::ffff:127.0.0.1', undefined, '127.0.0.1'],
    ['several headers joined', '192.0.2.1', ['198.51.100.3', '10.1.1.1'], '198.51.100.3'],
    ['v6 trusted peer', '::1', '2001:db8::9', '2001:db8::9'],
  ])('%s', (_name, socket, xff, want) => {
    expect(clientAddress(socket, xff, trusted)).toBe(want);
  });
  it('itIgnoresXffWithoutTrustedProxies', () => {
    expect(clientAddress('10.0.0.1', '198.51.100.1', undefined)).toBe('10.0.0.1');
  });
});
