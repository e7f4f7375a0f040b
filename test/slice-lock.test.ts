import { describe, expect, it } from 'vitest';
import { SliceFetch, SliceLock } from '../src/edge/slice-lock.js';

const tick = () => new Promise((r) => setImmediate(r));

async function collect(gen: AsyncGenerator<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of gen) out.push(Buffer.from(c));
  return Buffer.concat(out);
}

const data = Buffer.from(Array.from({ length: 100 }, (_, i) => i));

describe('SliceFetch', () => {
  it('streams to readers at various offsets as bytes arrive, before and after finish', async () => {
    const f = new SliceFetch<string>();
    const windows: [number, number][] = [[0, 100], [0, 1], [10, 20], [25, 75], [99, 100], [50, 100], [30, 30]];
    const early = windows.map(([a, b]) => collect(f.read(a, b)));
    for (let i = 0; i < 100; i += 7) {
      f.push(data.subarray(i, Math.min(100, i + 7)));
      await tick();
    }
    f.finish();
    const late = windows.map(([a, b]) => collect(f.read(a, b)));
    const got = await Promise.all([...early, ...late]);
    [...windows, ...windows].forEach(([a, b], i) => expect(got[i]!.equals(data.subarray(a, b))).toBe(true));
    expect(f.state).toBe('done');
  });

  it('a reader gets the bytes that exist before it blocks for more', async () => {
    const f = new SliceFetch<string>();
    f.push(data.subarray(0, 30));
    const it = f.read(10, 60)[Symbol.asyncIterator]();
    const first = await it.next();
    expect(Buffer.from(first.value as Buffer).equals(data.subarray(10, 30))).toBe(true);
    let resolved = false;
    const next = it.next().then((v) => ((resolved = true), v));
    await tick();
    expect(resolved).toBe(false); // waits, does not spin or end early
    f.push(data.subarray(30, 100));
    expect(Buffer.from((await next).value as Buffer).equals(data.subarray(30, 60))).toBe(true);
    expect((await it.next()).done).toBe(true);
  });

  it('a reader past what a finished slice holds ends short (the caller detects it)', async () => {
    const f = new SliceFetch<string>();
    f.push(data.subarray(0, 40));
    f.finish();
    expect((await collect(f.read(30, 60))).equals(data.subarray(30, 40))).toBe(true);
  });

  it('failure wakes waiting readers with the writer’s error after the bytes they already had', async () => {
    const f = new SliceFetch<string>();
    const got: Buffer[] = [];
    const reader = (async () => {
      for await (const c of f.read(0, 100)) got.push(Buffer.from(c));
    })();
    f.push(data.subarray(0, 40));
    await tick();
    f.fail(new Error('upstream reset'));
    await expect(reader).rejects.toThrow('upstream reset');
    expect(Buffer.concat(got).equals(data.subarray(0, 40))).toBe(true);
    await expect(f.head).rejects.toThrow('upstream reset');
    // after a failure nothing more is accepted
    f.push(data.subarray(40, 50));
    expect(f.length).toBe(40);
  });

  it('a failure after finish is ignored: done is final', async () => {
    const f = new SliceFetch<string>();
    f.setHead('h');
    f.push(data);
    f.finish();
    f.fail(new Error('late'));
    expect(f.state).toBe('done');
    expect(await f.head).toBe('h');
    expect((await collect(f.read(0, 100))).equals(data)).toBe(true);
  });

  it('an unawaited failed head is not an unhandled rejection', async () => {
    const f = new SliceFetch<string>();
    f.fail(new Error('nobody listens'));
    await tick();
    expect(f.state).toBe('failed');
  });
});

describe('SliceLock', () => {
  it('elects one writer; later callers join and are counted', () => {
    const lock = new SliceLock<string>();
    let started = 0;
    const a = lock.acquire('k', () => started++);
    const b = lock.acquire('k', () => started++);
    const c = lock.acquire('k', () => started++);
    const other = lock.acquire('other', () => started++);
    expect(started).toBe(2);
    expect(a.joined).toBe(false);
    expect(b.joined && c.joined).toBe(true);
    expect(b.fetch).toBe(a.fetch);
    expect(a.fetch.waiters).toBe(2);
    expect(other.fetch).not.toBe(a.fetch);
    expect(lock.size).toBe(2);
  });

  it('hands over after a failure: the next caller becomes the new writer and readers resume', async () => {
    const lock = new SliceLock<string>();
    const writers: SliceFetch<string>[] = [];
    const first = lock.acquire('k', (f) => writers.push(f)).fetch;
    first.push(data.subarray(0, 25));

    // A reader resumes from where it got to on whatever fetch the lock gives it next.
    const reader = (async () => {
      const out: Buffer[] = [];
      let pos = 0;
      let fetch = first;
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          for await (const c of fetch.read(pos, 100)) {
            out.push(Buffer.from(c));
            pos += c.length;
          }
          return Buffer.concat(out);
        } catch {
          fetch = lock.acquire('k', (f) => writers.push(f)).fetch;
        }
      }
      throw new Error('gave up');
    })();
    await tick();
    first.fail(new Error('writer died'));
    await tick();
    expect(writers.length).toBe(2); // a new writer was elected, not the failed one reused
    const second = writers[1]!;
    expect(lock.get('k')).toBe(second);
    // the failed writer releasing late must not evict its successor
    lock.release('k', first);
    expect(lock.get('k')).toBe(second);
    second.push(data);
    second.finish();
    expect((await reader).equals(data)).toBe(true);
    lock.release('k', second);
    expect(lock.size).toBe(0);
  });

  it('a finished fetch keeps serving joiners until it is released, then a new writer starts', () => {
    const lock = new SliceLock<string>();
    let started = 0;
    const a = lock.acquire('k', () => started++).fetch;
    a.push(data);
    a.finish();
    expect(lock.acquire('k', () => started++).joined).toBe(true);
    lock.release('k', a);
    expect(lock.acquire('k', () => started++).joined).toBe(false);
    expect(started).toBe(2);
  });
});
