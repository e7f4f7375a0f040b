import { randomBytes } from 'node:crypto';
import { mkdir, open, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { SliceLocation, StoredMeta } from './types.js';

/**
 * One slice file: `RCDN1\n`, a u32 (big-endian) header length, a JSON header, then the slice
 * bytes. The header repeats what the index needs (key, index, length, CRC, representation), so
 * the index can be rebuilt from the files alone.
 */
export interface SliceHeader {
  key: string;
  index: number;
  length: number;
  /** CRC-32 of the slice bytes. */
  crc32: number;
  sliceBytes: number;
  meta: StoredMeta;
}

export const MAGIC = Buffer.from('RCDN1\n');
export const HEADER_PREFIX = MAGIC.length + 4;
export const MAX_HEADER = 64 * 1024;
/** Temp files start with this; anything so named found at start is a write a crash interrupted. */
export const TMP_PREFIX = '.tmp-';

export interface EncodedSlice {
  /** What to write, in order: prefix, header, the slice bytes. */
  parts: Buffer[];
  crc32: number;
  dataOffset: number;
  fileBytes: number;
}

export function encodeSlice(key: string, index: number, meta: StoredMeta, data: Buffer, sliceBytes: number): EncodedSlice {
  const crc = crc32(data);
  const header = Buffer.from(JSON.stringify({ key, index, length: data.length, crc32: crc, sliceBytes, meta } satisfies SliceHeader));
  const prefix = Buffer.alloc(HEADER_PREFIX);
  MAGIC.copy(prefix);
  prefix.writeUInt32BE(header.length, MAGIC.length);
  const dataOffset = HEADER_PREFIX + header.length;
  return { parts: [prefix, header, data], crc32: crc, dataOffset, fileBytes: dataOffset + data.length };
}

/**
 * Whether `file` (a whole slice file read from offset 0) starts with the magic and a header
 * length that puts the data at `dataOffset`: a file replaced by a stranger, or shifted, fails.
 */
export function prefixMatches(file: Buffer, dataOffset: number): boolean {
  if (file.length < HEADER_PREFIX) return false;
  for (let i = 0; i < MAGIC.length; i++) if (file[i] !== MAGIC[i]) return false;
  return HEADER_PREFIX + file.readUInt32BE(MAGIC.length) === dataOffset;
}

/** A slice file's header and where its bytes are, or undefined if it is not a whole slice file. */
export async function readSliceHeader(path: string): Promise<{ header: SliceHeader; slice: SliceLocation; mtimeMs: number } | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
    const st = await fh.stat();
    if (!st.isFile() || st.size < HEADER_PREFIX) return undefined;
    const prefix = Buffer.alloc(HEADER_PREFIX);
    await fh.read(prefix, 0, HEADER_PREFIX, 0);
    if (!prefix.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
    const headerLen = prefix.readUInt32BE(MAGIC.length);
    if (headerLen > MAX_HEADER || HEADER_PREFIX + headerLen > st.size) return undefined;
    const json = Buffer.alloc(headerLen);
    await fh.read(json, 0, headerLen, HEADER_PREFIX);
    const header = JSON.parse(json.toString('utf8')) as SliceHeader;
    if (
      typeof header.key !== 'string' ||
      typeof header.index !== 'number' ||
      typeof header.length !== 'number' ||
      typeof header.crc32 !== 'number' ||
      typeof header.sliceBytes !== 'number' ||
      !header.meta ||
      typeof header.meta.size !== 'number'
    ) {
      return undefined;
    }
    const dataOffset = HEADER_PREFIX + headerLen;
    // A slice is whole or it is nothing: the file ends exactly where the header says the bytes do.
    if (st.size !== dataOffset + header.length) return undefined;
    return { header, slice: { path, dataOffset, length: header.length, crc32: header.crc32, fileBytes: st.size }, mtimeMs: st.mtimeMs };
  } catch {
    return undefined;
  } finally {
    await fh?.close().catch(() => {});
  }
}

/**
 * Writes `parts` to a new temp file in `dir` (created if missing) and returns its path. No
 * fsync: every slice carries its length and CRC, so a file a crash tore is found and dropped
 * at start (length) or on its first read (CRC); durability would buy a refetch, not safety.
 */
export async function writeTempFile(dir: string, parts: Buffer[]): Promise<string> {
  const tmp = join(dir, `${TMP_PREFIX}${randomBytes(6).toString('hex')}`);
  let fh;
  try {
    fh = await open(tmp, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await mkdir(dir, { recursive: true });
    fh = await open(tmp, 'wx');
  }
  try {
    const { bytesWritten } = await fh.writev(parts);
    // A short write is a full disk that did not say so yet: the file is useless.
    const total = parts.reduce((n, p) => n + p.length, 0);
    if (bytesWritten !== total) throw Object.assign(new Error(`short write (${bytesWritten} of ${total} bytes)`), { code: 'ENOSPC' });
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  try {
    await fh.close();
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  return tmp;
}

/** The folder a temp file for `path` goes in: the same one, so the rename into place is atomic. */
export function tempDirFor(path: string): string {
  return dirname(path);
}
