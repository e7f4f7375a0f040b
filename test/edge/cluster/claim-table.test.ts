import { describe, expect, it } from 'vitest';
import { ClaimTable, type ClaimVerdict } from '../../../src/edge/cluster/claim-table.js';

function asker(table: ClaimTable, slice: string, worker: number) {
  const got: ClaimVerdict[] = [];
  table.claim(slice, worker, (v) => got.push(v));
  return got;
}

describe('ClaimTable', () => {
  it('gives a free slice to the first worker and makes the others wait', () => {
    const t = new ClaimTable();
    expect(asker(t, 's', 1)).toEqual(['fetch']);
    const w2 = asker(t, 's', 2);
    const w3 = asker(t, 's', 3);
    expect(w2).toEqual([]);
    expect(w3).toEqual([]);
    expect(t.size).toBe(1);
  });

  it('tells every waiter to read the disk once the claimant stored the slice', () => {
    const t = new ClaimTable();
    asker(t, 's', 1);
    const w2 = asker(t, 's', 2);
    const w3 = asker(t, 's', 3);
    t.stored('s');
    expect(w2).toEqual(['stored']);
    expect(w3).toEqual(['stored']);
    expect(t.size).toBe(0);
    // Released after storing: nothing left to hand over.
    t.release('s', 1);
    expect(t.size).toBe(0);
  });

  it('hands the claim to one waiter at a time when the claimant gives up', () => {
    const t = new ClaimTable();
    asker(t, 's', 1);
    const w2 = asker(t, 's', 2);
    const w3 = asker(t, 's', 3);
    t.release('s', 1);
    expect(w2).toEqual(['fetch']);
    expect(w3).toEqual([]);
    t.release('s', 2);
    expect(w3).toEqual(['fetch']);
    t.release('s', 3);
    expect(t.size).toBe(0);
  });

  it('ignores a release from a worker that does not hold the claim', () => {
    const t = new ClaimTable();
    asker(t, 's', 1);
    const w2 = asker(t, 's', 2);
    t.release('s', 2);
    expect(w2).toEqual([]);
    expect(t.size).toBe(1);
  });

  it('passes a dead worker\'s claims on and forgets its waits', () => {
    const t = new ClaimTable();
    asker(t, 'a', 1);
    const w2a = asker(t, 'a', 2);
    asker(t, 'b', 2);
    const w1b = asker(t, 'b', 1);
    t.workerGone(2);
    // Worker 2 held b: worker 1 gets it. Worker 2 waited on a: that wait is gone.
    expect(w1b).toEqual(['fetch']);
    t.release('a', 1);
    expect(w2a).toEqual([]);
    expect(t.size).toBe(1);
  });

  it('keeps slices apart', () => {
    const t = new ClaimTable();
    expect(asker(t, 'a', 1)).toEqual(['fetch']);
    expect(asker(t, 'b', 2)).toEqual(['fetch']);
    expect(t.size).toBe(2);
  });
});
