import { describe, expect, it } from 'vitest';
import { ExpiringMap } from '../../src/common/expiring-map.js';

describe('ExpiringMap', () => {
  it('itForgetsEntriesOnceTheirTtlHasPassed', () => {
    const m = new ExpiringMap<string, number>(10, 1000);
    m.set('a', 1, 0);
    expect(m.get('a', 999)).toBe(1);
    expect(m.get('a', 1000)).toBeUndefined();
    expect(m.size).toBe(0);
  });

  it('itNeverHoldsMoreThanMaxEntriesAndEvictsTheOldestFirst', () => {
    const m = new ExpiringMap<number, number>(100, 60_000);
    for (let i = 0; i < 10_000; i++) {
      m.set(i, i, i);
      expect(m.size).toBeLessThanOrEqual(100);
    }
    expect(m.evicted).toBe(9_900);
    expect(m.get(9_899, 10_000)).toBeUndefined();
    expect(m.get(9_900, 10_000)).toBe(9_900);
    expect(m.get(9_999, 10_000)).toBe(9_999);
  });

  it('itSweepsExpiredEntriesBeforeEvictingLiveOnes', () => {
    const m = new ExpiringMap<string, number>(2, 100);
    m.set('old', 1, 0);
    m.set('live', 2, 50);
    m.set('new', 3, 120); // 'old' has expired: it goes, 'live' stays
    expect(m.evicted).toBe(0);
    expect(m.get('live', 120)).toBe(2);
    expect(m.get('new', 120)).toBe(3);
  });

  it('itRenewsAnEntrySetAgain', () => {
    const m = new ExpiringMap<string, number>(2, 100);
    m.set('a', 1, 0);
    m.set('b', 2, 10);
    m.set('a', 3, 50);
    m.set('c', 4, 60); // full: the oldest is now 'b'
    expect(m.get('b', 60)).toBeUndefined();
    expect(m.get('a', 140)).toBe(3);
  });
});
