import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FdCache } from '../../../src/edge/disk/fd-cache.js';
import { tempDir } from '../../helpers/cluster.js';
import { fdsOn } from './open-fds.js';

function files(n: number): string[] {
  const dir = tempDir();
  return Array.from({ length: n }, (_, i) => {
    const p = join(dir, `f${i}`);
    writeFileSync(p, `file ${i}`);
    return p;
  });
}

describe('FdCache', () => {
  it('opens a file once however many readers use it, and shares one descriptor between concurrent readers', async () => {
    const [p] = files(1);
    const c = new FdCache(4);
    const held = await Promise.all(Array.from({ length: 5 }, () => c.acquire(p!)));
    expect(new Set(held.map((f) => f.fd)).size).toBe(1);
    for (const f of held) c.release(f);
    const again = c.tryAcquire(p!)!;
    c.release(again);
    expect(c.stats()).toMatchObject({ open: 1, cached: 1, opens: 1 });
    expect(fdsOn(p!)).toBe(1);
    c.closeAll();
    expect(fdsOn(p!)).toBe(0);
  });

  it('keeps at most `max` files open, closing the least recently used', async () => {
    const ps = files(5);
    const c = new FdCache(2);
    for (const p of ps) c.release(await c.acquire(p));
    c.release(c.tryAcquire(ps[3]!)!); // ps[3] is now the most recent
    c.release(await c.acquire(ps[0]!)); // reopens ps[0]; evicts ps[4]
    expect(c.stats().open).toBe(2);
    expect(c.has(ps[3]!) && c.has(ps[0]!)).toBe(true);
    expect(ps.map(fdsOn)).toEqual([1, 0, 0, 1, 0]);
    c.closeAll();
  });

  it('never closes a descriptor a reader holds: an invalidated file closes when its last reader lets go', async () => {
    const [p] = files(1);
    const c = new FdCache(4);
    const f = await c.acquire(p!);
    c.invalidate(p!);
    expect(c.has(p!)).toBe(false);
    expect(fdsOn(p!)).toBe(1); // still held
    expect(c.tryAcquire(p!)).toBeUndefined(); // but no new reader gets it
    c.release(f);
    expect(fdsOn(p!)).toBe(0);
    expect(c.stats().open).toBe(0);
  });

  it('an evicted file a reader holds is closed after the read, not under it', async () => {
    const [a, b] = files(2);
    const c = new FdCache(1);
    const fa = await c.acquire(a!);
    c.release(await c.acquire(b!)); // evicts a while held
    expect(fdsOn(a!)).toBe(1);
    c.release(fa);
    expect(fdsOn(a!)).toBe(0);
    c.closeAll();
  });

  it('a cached descriptor reads the file it opened even after the name is unlinked', async () => {
    const [p] = files(1);
    const c = new FdCache(4);
    c.release(await c.acquire(p!));
    unlinkSync(p!);
    const f = c.tryAcquire(p!)!;
    expect(f).toBeDefined();
    const { readSync } = await import('node:fs');
    const buf = Buffer.alloc(6);
    readSync(f.fd, buf, 0, 6, 0);
    expect(buf.toString()).toBe('file 0');
    c.release(f);
    c.closeAll();
    expect(fdsOn(p!)).toBe(0);
  });

  it('an open that fails rejects every waiter and caches nothing', async () => {
    const c = new FdCache(4);
    const missing = join(tempDir(), 'nope');
    const results = await Promise.allSettled([c.acquire(missing), c.acquire(missing)]);
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(c.stats()).toMatchObject({ open: 0, cached: 0 });
  });
});
