import { describe, expect, it } from 'vitest';
import { DEFAULT_PREFETCH, type PrefetchConfig } from '../../src/common/config.js';
import { ANSWER_MULTIPLE, admitPrefetch, prefetchCap, prefetchShare, reserveBytes } from '../../src/edge/prefetch-budget.js';

const MiB = 1024 * 1024;
const cfg: PrefetchConfig = { enabled: true, maxBufferMs: 30_000, maxConcurrent: 4, maxBytesInFlight: 16 * MiB };
const idle = { running: 0, bytesInFlight: 0 };

describe('admitPrefetch', () => {
  it('starts for a player below the buffer threshold, or one that does not say', () => {
    expect(admitPrefetch(cfg, idle, 29_999, false)).toBe('start');
    expect(admitPrefetch(cfg, idle, 0, false)).toBe('start');
    expect(admitPrefetch(cfg, idle, undefined, false)).toBe('start');
  });

  it('skips a player with a comfortable buffer (bl at or over maxBufferMs)', () => {
    expect(admitPrefetch(cfg, idle, 30_000, false)).toBe('skipped_buffer');
    expect(admitPrefetch(cfg, idle, 120_000, false)).toBe('skipped_buffer');
  });

  it('skips while the node is overloaded or draining', () => {
    expect(admitPrefetch(cfg, idle, 1000, true)).toBe('skipped_overload');
  });

  it('skips at the concurrency budget and at the bytes budget', () => {
    expect(admitPrefetch(cfg, { running: 3, bytesInFlight: 0 }, 1000, false)).toBe('start');
    expect(admitPrefetch(cfg, { running: 4, bytesInFlight: 0 }, 1000, false)).toBe('skipped_budget');
    expect(admitPrefetch(cfg, { running: 1, bytesInFlight: 16 * MiB - 1 }, 1000, false)).toBe('start');
    expect(admitPrefetch(cfg, { running: 1, bytesInFlight: 16 * MiB }, 1000, false)).toBe('skipped_budget');
  });

  it('skips when the slice a prefetch reserves as it starts would not fit beside the bytes in flight (review P2-6)', () => {
    expect(admitPrefetch(cfg, { running: 1, bytesInFlight: 14 * MiB }, 1000, false, 2 * MiB)).toBe('start');
    expect(admitPrefetch(cfg, { running: 1, bytesInFlight: 14 * MiB + 1 }, 1000, false, 2 * MiB)).toBe('skipped_budget');
    // Alone, one slice always fits (the budget is at least one slice).
    expect(admitPrefetch(cfg, idle, 1000, false, 16 * MiB)).toBe('start');
  });

  it('tells the player-side reason first: a comfortable buffer on a busy node is skipped_buffer', () => {
    expect(admitPrefetch(cfg, { running: 9, bytesInFlight: 0 }, 60_000, true)).toBe('skipped_buffer');
  });
});

describe('reserveBytes', () => {
  it('alone, a prefetch takes what it wants up to the budget (a larger object is cut)', () => {
    expect(reserveBytes(cfg, 0, 6 * MiB)).toBe(6 * MiB);
    expect(reserveBytes(cfg, 0, 100 * MiB)).toBe(16 * MiB);
  });

  it('with others running it must fit in what is left', () => {
    expect(reserveBytes(cfg, 10 * MiB, 6 * MiB)).toBe(6 * MiB);
    expect(reserveBytes(cfg, 10 * MiB, 6 * MiB + 1)).toBe('skipped_budget');
  });
});

describe('prefetchShare: a worker of an N-worker node', () => {
  it('gets 1/N of the concurrency and the bytes, at least one prefetch and one slice', () => {
    expect(prefetchShare(cfg, 1, 2 * MiB)).toBe(cfg);
    expect(prefetchShare(cfg, 2, 2 * MiB)).toEqual({ ...cfg, maxConcurrent: 2, maxBytesInFlight: 8 * MiB });
    expect(prefetchShare(cfg, 8, 4 * MiB)).toEqual({ ...cfg, maxConcurrent: 1, maxBytesInFlight: 4 * MiB });
  });

  it('keeps the player-side threshold and the switch', () => {
    const s = prefetchShare(DEFAULT_PREFETCH, 4, 2 * MiB);
    expect(s.maxBufferMs).toBe(DEFAULT_PREFETCH.maxBufferMs);
    expect(s.enabled).toBe(true);
  });
});

describe('prefetchCap (review P2-5)', () => {
  const slice = 2 * MiB;
  it('brings at most a few times the answer under way, at least one slice, never over the budget', () => {
    expect(ANSWER_MULTIPLE).toBe(4);
    expect(prefetchCap(cfg, 1 * MiB, slice)).toBe(4 * MiB);
    expect(prefetchCap(cfg, 1, slice)).toBe(slice);
    expect(prefetchCap(cfg, 0, slice)).toBe(slice);
    expect(prefetchCap(cfg, 100 * MiB, slice)).toBe(16 * MiB);
  });

  it('takes an unusable answer size as none (one slice)', () => {
    for (const bad of [Number.NaN, -5, Number.POSITIVE_INFINITY]) expect(prefetchCap(cfg, bad, slice)).toBe(slice);
  });
});
