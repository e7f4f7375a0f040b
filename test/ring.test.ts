import { describe, expect, it } from 'vitest';
import { Ring, controlPoints, rank } from '../src/common/ring.js';

const nodes = ['edge-a1', 'edge-a2', 'edge-a3', 'edge-b1', 'edge-b2', 'edge-c1'];
const titles = Array.from({ length: 10_000 }, (_, i) => `title-${i}`);

describe('ring', () => {
  it('itGivesTheSameRankingWhateverTheOrderNodesAreListedIn', () => {
    const a = new Ring(nodes);
    const b = new Ring([...nodes].reverse());
    for (const t of titles.slice(0, 2000)) expect(b.rank(t)).toEqual(a.rank(t));
  });

  it('itRanksEveryNodeOnceStartingWithTheOwner', () => {
    const r = new Ring(nodes);
    const order = r.rank('big-buck-bunny');
    expect([...order].sort()).toEqual([...nodes].sort());
    expect(r.owner('big-buck-bunny')).toBe(order[0]);
    expect(rank('big-buck-bunny', nodes)).toEqual(order);
  });

  it('itDerivesControlPointsFromTheNodeIdAlone', () => {
    expect(controlPoints('edge-a1', 5)).toEqual(controlPoints('edge-a1', 5));
    expect(controlPoints('edge-a1', 5)).not.toEqual(controlPoints('edge-a2', 5));
    for (const p of controlPoints('x', 100)) expect(p).toBeGreaterThanOrEqual(0);
  });

  it('itMovesOnlyTheRemovedNodesTitlesWhenANodeLeaves', () => {
    const full = new Ring(nodes);
    const without = new Ring(nodes.filter((n) => n !== 'edge-a2'));
    let moved = 0;
    for (const t of titles) {
      const before = full.owner(t);
      const after = without.owner(t);
      if (before === 'edge-a2') {
        moved++;
        // The title goes to the next node in its old ranking.
        expect(after).toBe(full.rank(t)[1]);
      } else {
        expect(after).toBe(before);
      }
      // Rankings of the smaller ring are the bigger ring's with the node skipped.
      expect(without.rank(t)).toEqual(full.rank(t).filter((n) => n !== 'edge-a2'));
    }
    expect(moved).toBeGreaterThan(0);
  });

  it('itMovesOnlyTitlesToTheNewNodeWhenANodeJoins', () => {
    const before = new Ring(nodes);
    const after = new Ring([...nodes, 'edge-d1']);
    for (const t of titles) {
      const o = after.owner(t);
      if (o !== 'edge-d1') expect(o).toBe(before.owner(t));
    }
  });

  it('itSpreadsTitlesRoughlyEvenly', () => {
    const r = new Ring(nodes);
    const counts = new Map<string, number>();
    for (const t of titles) counts.set(r.owner(t)!, (counts.get(r.owner(t)!) ?? 0) + 1);
    const share = titles.length / nodes.length;
    for (const n of nodes) {
      expect(counts.get(n) ?? 0).toBeGreaterThan(share * 0.6);
      expect(counts.get(n) ?? 0).toBeLessThan(share * 1.4);
    }
  });

  it('itRanksASubsetAsARingOfThatSubsetWould', () => {
    const r = new Ring(nodes);
    const sub = new Set(['edge-b1', 'edge-b2']);
    const small = new Ring([...sub]);
    for (const t of titles.slice(0, 1000)) expect(r.rankAmong(t, sub)).toEqual(small.rank(t));
  });

  it('itHandlesAnEmptyRing', () => {
    expect(new Ring([]).rank('x')).toEqual([]);
    expect(new Ring([]).owner('x')).toBeUndefined();
  });
});
