import { read } from 'node:fs';
import { crc32 } from 'node:zlib';
import type { FdCache, OpenFile } from './fd-cache.js';
import { prefixMatches } from './slice-file.js';
import type { SliceLocation } from './types.js';

/** The file does not hold the slice the index says it does: drop it, never serve it. */
export class SliceDamaged extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SliceDamaged';
  }
}

/**
 * Reads slice `loc` through the descriptor cache: one positional read of the whole file plus
 * one byte, so every read checks the header's prefix (magic, header length) and that the file
 * is exactly as long as indexed (a truncated or extended file fails), and `checkCrc` adds the
 * CRC-32 of the bytes. The Buffer returned is the caller's to keep (the memory tier keeps disk
 * hits) unless `alloc` lends it from a pool (DiskTier.readLease).
 * Rejects with SliceDamaged if the file is not what the index says, or the open/read error.
 */
export async function readSlice(
  fds: FdCache,
  loc: SliceLocation,
  checkCrc: boolean,
  alloc: (size: number) => Buffer = (size) => Buffer.allocUnsafeSlow(size),
): Promise<Buffer> {
  const file = fds.tryAcquire(loc.path) ?? (await fds.acquire(loc.path));
  // One byte more than the file: a read that fills it means the file grew.
  const buf = alloc(loc.fileBytes + 1);
  let got: number;
  try {
    got = await readFully(file, buf);
  } finally {
    fds.release(file);
  }
  if (got !== loc.fileBytes) throw new SliceDamaged(got < loc.fileBytes ? 'file shorter than indexed' : 'file longer than indexed');
  if (!prefixMatches(buf, loc.dataOffset)) throw new SliceDamaged('header prefix does not match the index');
  const data = buf.subarray(loc.dataOffset, loc.fileBytes);
  if (checkCrc && crc32(data) !== loc.crc32) throw new SliceDamaged('checksum mismatch');
  return data;
}

/** Reads from offset 0 until `buf` is full or the file ends; resolves with the bytes read. */
function readFully(file: OpenFile, buf: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const step = (): void => {
      read(file.fd, buf, done, buf.length - done, done, (err, n) => {
        if (err) return reject(err);
        done += n;
        // Reaching the indexed length in one read is the common case: a regular file returns
        // less than asked only at its end. Short of it, read on until the file says it ended.
        if (n === 0 || done >= buf.length - 1) return resolve(done);
        step();
      });
    };
    step();
  });
}
