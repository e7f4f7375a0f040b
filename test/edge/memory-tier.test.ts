import { describe, expect, it } from 'vitest';
import { MemoryTier, holdsLittleMore } from '../../src/edge/memory-tier.js';

describe('MemoryTier', () => {
  it('never keeps a view into a much larger buffer: it holds no more memory than it counts', () => {
    const tier = new MemoryTier({ capacityBytes: 1 << 24 });
    // A 16 KiB body read off a socket is a view into the socket's 1 MiB read buffer.
    const socketRead = Buffer.alloc(1 << 20, 7);
    const body = socketRead.subarray(4096, 4096 + 16 * 1024);
    tier.set('k', 0, 'r', body);
    const kept = tier.get('k', 0, 'r')!;
    expect(kept.equals(body)).toBe(true);
    expect(kept.buffer.byteLength).toBeLessThan(64 * 1024 + 16 * 1024 + 1);
    expect(tier.stats().usedBytes).toBe(16 * 1024);
  });

  it('keeps a buffer that is (nearly) its own as it is', () => {
    const tier = new MemoryTier({ capacityBytes: 1 << 24 });
    const whole = Buffer.alloc(2 << 20, 1);
    tier.set('k', 0, 'r', whole);
    expect(tier.get('k', 0, 'r')).toBe(whole);
    // A pooled disk read: the slice plus its header in a buffer a little larger.
    const pooled = Buffer.alloc((2 << 20) + 4097).subarray(200, 200 + (2 << 20));
    expect(holdsLittleMore(pooled)).toBe(true);
    // A 1 MiB slice in a 2 MiB pooled buffer is not.
    expect(holdsLittleMore(Buffer.alloc((2 << 20) + 4097).subarray(0, 1 << 20))).toBe(false);
  });

  it('admits a disk slice on its second sighting only (2Q)', () => {
    const tier = new MemoryTier({ capacityBytes: 1 << 24 });
    expect(tier.offer('k', 0, 'r', Buffer.alloc(10))).toBe(false);
    expect(tier.offer('k', 0, 'r', Buffer.alloc(10))).toBe(true);
    expect(tier.has('k', 0, 'r')).toBe(true);
  });
});
