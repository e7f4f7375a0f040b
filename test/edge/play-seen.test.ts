import { describe, expect, it } from 'vitest';
import { SeenPlays } from '../../src/edge/play-seen.js';

describe('SeenPlays', () => {
  it('itRecordsEachPlayIdOnceWhateverTheNumberOfSegments', () => {
    const s = new SeenPlays(8, 'i1');
    for (let seg = 0; seg < 5; seg++) s.record('a');
    s.record('b');
    expect(s.since(0, 100)).toEqual({ instance: 'i1', next: 2, ids: ['a', 'b'], more: false, lost: false });
  });

  it('itGivesEachReaderWhatCameAfterItsOwnCursorWithoutRemovingIt', () => {
    const s = new SeenPlays(8, 'i1');
    s.record('a');
    const r1 = s.since(0, 100);
    s.record('b');
    expect(s.since(r1.next, 100).ids).toEqual(['b']);
    expect(s.since(0, 100).ids).toEqual(['a', 'b']); // another replica starting fresh
    expect(s.since(2, 100)).toMatchObject({ next: 2, ids: [], more: false });
  });

  it('itPagesALongBacklog', () => {
    const s = new SeenPlays(100, 'i1');
    for (let i = 0; i < 25; i++) s.record(`p${i}`);
    const p1 = s.since(0, 10);
    expect(p1).toMatchObject({ next: 10, more: true });
    const p3 = s.since(s.since(p1.next, 10).next, 10);
    expect(p3).toMatchObject({ next: 25, more: false, ids: ['p20', 'p21', 'p22', 'p23', 'p24'] });
  });

  it('itHoldsAtMostItsCapacityAndSaysWhenAReaderLostIds', () => {
    const s = new SeenPlays(4, 'i1');
    for (let i = 1; i <= 10; i++) s.record(`p${i}`);
    expect(s.size).toBe(4);
    expect(s.since(3, 100)).toEqual({ instance: 'i1', next: 10, ids: ['p7', 'p8', 'p9', 'p10'], more: false, lost: true });
    expect(s.since(6, 100).lost).toBe(false);
    // An overwritten id is new again if its play comes back.
    s.record('p1');
    expect(s.since(10, 100).ids).toEqual(['p1']);
  });

  it('itStartsAReaderWhoseCursorIsAheadOverFromTheOldest', () => {
    const s = new SeenPlays(4, 'i1');
    s.record('a');
    expect(s.since(99, 100)).toMatchObject({ next: 1, ids: ['a'] });
  });
});
