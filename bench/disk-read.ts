/**
 * `npm run bench:disk-read` — what one disk-tier read of a 2 MiB slice costs, by scheme, in
 * CPU µs per read (user + system, every thread of this process: the libuv pool's copies count)
 * and in garbage-collector pause per read. The slice files are real (the tier's own format),
 * in the page cache after a first pass, so this measures our work, not the device.
 *
 *   open+read+close, CRC   what every disk hit did before issue 9 (FileHandle, CRC every read)
 *   fd cache, CRC          a cached descriptor, one positional read, CRC every read
 *   fd cache               the same without the CRC (a verified slice, not sampled)
 *   fd cache, pooled       the same into buffers taken from a free list and given back at
 *                          once: the best a reference-counted pool could do
 *   DiskTier.read          the tier as built: fd cache, fresh buffer, CRC on 1 read in 64
 *   DiskTier.readLease     the same into a pooled buffer, released as soon as it is read (what
 *                          a hit path that releases after its socket write would get)
 *   crc32 alone            the CRC of 2 MiB
 *
 * Environment knobs: DISK_READ_N (reads per scheme, default 3000), DISK_READ_INFLIGHT (default 8).
 */
import { rename } from 'node:fs/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { read } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import { createLogger } from '../src/common/logger.js';
import { objectKey } from '../src/common/paths.js';
import { DiskTier } from '../src/edge/disk-tier.js';
import { FdCache } from '../src/edge/disk/fd-cache.js';
import { encodeSlice, writeTempFile } from '../src/edge/disk/slice-file.js';
import { readSlice } from '../src/edge/disk/slice-reader.js';
import type { SliceLocation, StoredMeta } from '../src/edge/disk/types.js';

const MiB = 1024 * 1024;
const SLICE = 2 * MiB;
const FILES = 64;
const N = Number(process.env.DISK_READ_N ?? 3000);
const INFLIGHT = Number(process.env.DISK_READ_INFLIGHT ?? 8);

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

interface Result {
  scheme: string;
  cpuUs: number;
  wallUs: number;
  gcUs: number;
}

async function measure(scheme: string, readOne: (i: number) => Promise<unknown>): Promise<Result> {
  // Warm-up pass: page cache, descriptors, JIT.
  for (let i = 0; i < FILES; i++) await readOne(i);
  const gc0 = gcMs;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: INFLIGHT }, async () => {
      while (next < N) await readOne(next++);
    }),
  );
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { scheme, cpuUs: (cpu.user + cpu.system) / N, wallUs: (wall * 1000) / N, gcUs: ((gcMs - gc0) * 1000) / N };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'reelcdn-disk-read-'));
  try {
    const logger = createLogger('bench', 'silent');
    const meta: StoredMeta = { size: FILES * SLICE, contentType: 'video/mp4', etag: '"b"', storedAt: 1 };
    const key = objectKey('bench', 'big.mp4');
    const tier = new DiskTier({ dir, capacityBytes: 4 * FILES * SLICE, sliceBytes: SLICE, logger });
    await tier.open();
    const data = Buffer.alloc(SLICE);
    for (let i = 0; i < FILES; i++) {
      data.fill(i);
      if ((await tier.write(key, i, meta, data)) !== 'stored') throw new Error('write refused');
    }
    // Plain locations for the low-level schemes, in their own folder.
    const locs: SliceLocation[] = [];
    for (let i = 0; i < FILES; i++) {
      data.fill(i);
      const enc = encodeSlice(key, i, meta, data, SLICE);
      const path = join(dir, 'raw', `s.${i}`);
      await rename(await writeTempFile(join(dir, 'raw'), enc.parts), path);
      locs.push({ path, dataOffset: enc.dataOffset, length: SLICE, crc32: enc.crc32, fileBytes: enc.fileBytes });
    }
    const loc = (i: number) => locs[i % FILES]!;

    const fds = new FdCache(1024);
    const pool: Buffer[] = [];
    const results: Result[] = [];
    results.push(
      await measure('open+read+close, CRC (before)', async (i) => {
        const l = loc(i);
        const fh = await open(l.path, 'r');
        try {
          const buf = Buffer.allocUnsafe(l.length);
          const { bytesRead } = await fh.read(buf, 0, l.length, l.dataOffset);
          if (bytesRead !== l.length || crc32(buf) !== l.crc32) throw new Error('bad slice');
          return buf;
        } finally {
          await fh.close();
        }
      }),
    );
    results.push(await measure('fd cache, CRC every read', (i) => readSlice(fds, loc(i), true)));
    results.push(await measure('fd cache, no CRC', (i) => readSlice(fds, loc(i), false)));
    results.push(
      await measure('fd cache, pooled buffers', async (i) => {
        const l = loc(i);
        const buf = pool.pop() ?? Buffer.allocUnsafeSlow(SLICE + 64 * 1024); // room for any header
        const f = fds.tryAcquire(l.path) ?? (await fds.acquire(l.path));
        try {
          await new Promise<number>((ok, fail) => read(f.fd, buf, 0, l.fileBytes + 1, 0, (err, n) => (err ? fail(err) : ok(n))));
        } finally {
          fds.release(f);
        }
        pool.push(buf); // handed back at once: no consumer ever holds it
      }),
    );
    results.push(await measure('DiskTier.read (CRC 1 in 64)', (i) => tier.read(key, i % FILES)));
    results.push(
      await measure('DiskTier.readLease, released at once', async (i) => {
        (await tier.readLease(key, i % FILES))!.release();
      }),
    );
    results.push(await measure('crc32 of 2 MiB alone', async (i) => crc32(locs.length > 0 ? data : Buffer.alloc(i))));
    fds.closeAll();
    await tier.close();

    console.log(`disk-tier read of one ${SLICE / MiB} MiB slice, ${N} reads per scheme, ${INFLIGHT} in flight, Node ${process.version}`);
    console.log('| scheme | CPU µs/read | wall µs/read | GC µs/read |');
    console.log('|---|---:|---:|---:|');
    for (const r of results) console.log(`| ${r.scheme} | ${r.cpuUs.toFixed(0)} | ${r.wallUs.toFixed(0)} | ${r.gcUs.toFixed(1)} |`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
