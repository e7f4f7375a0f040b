import { describe, expect, it } from 'vitest';
import { chaosSchedule } from '../../bench/chaos-faults.js';
import { CacheView, EtagBook } from '../../bench/chaos-ledger.js';

const want = (start: number, end: number) => ({ title: 't', file: 'f.mp4', start, end });

describe('chaos ledger: what a live edge is known to hold', () => {
  it('knows only the slices an edge served, and only while it lives', () => {
    const v = new CacheView(100);
    v.markAlive('a');
    v.noteServed(want(50, 250), v.stamp('a', 't')); // slices 0, 1, 2
    expect(v.holders(want(0, 300)).map((h) => h.edge)).toEqual(['a']);
    expect(v.holders(want(0, 301))).toEqual([]); // slice 3 never served
    const before = v.holders(want(0, 100));
    v.markDead('a');
    expect(v.stillHolding(want(0, 100), before)).toEqual([]);
    v.markAlive('a');
    expect(v.holders(want(0, 100))).toEqual([]); // a restarted edge must serve again first
  });

  it('an answer that began before a purge or a kill teaches nothing', () => {
    const v = new CacheView(100);
    v.markAlive('a');
    const purged = v.stamp('a', 't');
    v.forgetTitle('a', 't');
    v.noteServed(want(0, 100), purged);
    expect(v.holders(want(0, 100))).toEqual([]);
    const killed = v.stamp('a', 't');
    v.markDead('a');
    v.markAlive('a');
    v.noteServed(want(0, 100), killed);
    expect(v.holders(want(0, 100))).toEqual([]);
  });

  it('a corrupted slice file is no longer counted as held', () => {
    const v = new CacheView(100);
    v.markAlive('a');
    v.noteServed(want(0, 200), v.stamp('a', 't'));
    const before = v.holders(want(0, 200));
    v.forgetSlice('a', 't', 'f.mp4', 1);
    expect(v.stillHolding(want(0, 200), before)).toEqual([]);
    expect(v.stillHolding(want(0, 100), v.holders(want(0, 100)))).toEqual(['a']);
  });
});

describe('chaos ledger: an ETag names one body', () => {
  it('flags an ETag that came with the other version before', () => {
    const b = new EtagBook();
    expect(b.note('t', 'f', '"x"', 0)).toBeUndefined();
    expect(b.note('t', 'f', '"x"', 0)).toBeUndefined();
    expect(b.note('t', 'f', '"y"', 1)).toBeUndefined();
    expect(b.note('t', 'f', '"x"', 1)).toMatch(/version a's bytes before, now with version b's/);
    expect(b.note('t', 'g', '"x"', 1)).toBeUndefined(); // another file
  });
});

describe('chaos schedule', () => {
  it('kills an edge every 10 s, rotating, and stops the origin for 20 s', () => {
    const s = chaosSchedule(40_000, 3, 3);
    const kills = s.filter((f) => f.fault.kind === 'kill-edge');
    expect(kills.map((k) => k.atMs)).toEqual([4000, 14000, 24000, 34000]);
    expect(kills.map((k) => (k.fault as { edge: number }).edge)).toEqual([0, 1, 2, 0]);
    const stop = s.find((f) => f.fault.kind === 'stop-origin')!;
    const cont = s.find((f) => f.fault.kind === 'cont-origin')!;
    expect(cont.atMs - stop.atMs).toBe(20_000);
    for (const kind of ['fill-disk', 'free-disk', 'corrupt-slice', 'purge', 'reingest']) expect(s.some((f) => f.fault.kind === kind)).toBe(true);
    // The re-ingest lands after the origin is back, so the edges can fetch the new version.
    expect(s.find((f) => f.fault.kind === 'reingest')!.atMs).toBeGreaterThan(cont.atMs);
  });

  it('always lets the origin go again, even when the run ends inside the stop', () => {
    const s = chaosSchedule(12_000, 3, 3);
    expect(s.at(-1)).toEqual({ atMs: 12_000, fault: { kind: 'cont-origin' } });
    const long = chaosSchedule(600_000, 3, 3);
    expect(long.filter((f) => f.fault.kind === 'stop-origin').length).toBe(long.filter((f) => f.fault.kind === 'cont-origin').length);
    expect(long.filter((f) => f.fault.kind === 'kill-edge').length).toBe(60);
  });
});
