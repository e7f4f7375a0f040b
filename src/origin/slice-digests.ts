import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { FillManifest } from '../common/fill-manifest.js';

/** Where a file's bytes are: a local path, or something that streams a byte range [start, end) of it (an S3 origin's storage). */
export type SliceSource = string | { read(start: number, end: number): AsyncIterable<Buffer> };

/**
 * SHA-256 of each slice of a file, for the fill manifest's prefix ranges (FillFile.range): an
 * edge that pins only the start of a file cannot check it against the whole file's digest, so
 * the origin publishes one per slice of that edge's `sliceBytes`. Computed once per (file
 * content, slice size) — the content is named by its sha256 — and remembered, bounded.
 */
export class SliceDigests {
  /** (content, slice size) → digests of its first slices, as far as any manifest asked. */
  private readonly done = new Map<string, Promise<string[]>>();

  /** `capacity`: files' digest lists remembered (oldest out). */
  constructor(private readonly capacity = 4096) {}

  /**
   * Digests of the first `count` slices of the file at `path` (whose content has sha256
   * `sha256`): only the prefix is read — a manifest placing 40 MB of a 4 GB film reads 40 MB —
   * and a longer prefix asked later reads on from where the last one stopped.
   */
  of(path: SliceSource, sha256: string, sliceBytes: number, count: number): Promise<string[]> {
    const key = JSON.stringify([sha256, sliceBytes]);
    const known = this.done.get(key);
    const p = (async () => {
      const have = known ? await known.catch(() => [] as string[]) : [];
      if (have.length >= count) return have;
      return [...have, ...(await sliceDigestsOf(path, sliceBytes, have.length, count - have.length))];
    })();
    // A failed read is not remembered: the next manifest asks again.
    p.catch(() => {
      if (this.done.get(key) === p) this.done.delete(key);
    });
    this.done.delete(key);
    if (this.done.size >= this.capacity) this.done.delete(this.done.keys().next().value!);
    this.done.set(key, p);
    return p.then((all) => all.slice(0, count));
  }

  /**
   * The manifest with the digests of every ranged file filled in (a copy; the manifest's
   * version is unchanged: the digests follow from the file's sha256 and the slice size).
   */
  async complete(m: FillManifest, pathOf: (title: string, file: string) => SliceSource | undefined): Promise<FillManifest> {
    if (!m.files.some((f) => f.range)) return m;
    const files = await Promise.all(
      m.files.map(async (f) => {
        if (!f.range) return f;
        const path = pathOf(f.title, f.file);
        if (path === undefined) throw new Error(`${f.title}/${f.file}: not in the catalog`);
        const n = Math.ceil(f.range.end / f.range.sliceBytes);
        return { ...f, range: { ...f.range, sliceSha256: await this.of(path, f.sha256, f.range.sliceBytes, n) } };
      }),
    );
    return { ...m, files };
  }
}

/** Reads `count` slices from slice `first` on (fewer at the file's end), hashing each `sliceBytes` piece. */
export async function sliceDigestsOf(path: SliceSource, sliceBytes: number, first = 0, count = Infinity): Promise<string[]> {
  if (typeof path !== 'string') return streamedSliceDigests(path, sliceBytes, first, count);
  const fh = await open(path, 'r');
  try {
    const out: string[] = [];
    const buf = Buffer.allocUnsafe(Math.min(sliceBytes, 4 * 1024 * 1024));
    let h = createHash('sha256');
    let inSlice = 0;
    let pos = first * sliceBytes;
    while (out.length < count) {
      const want = Math.min(buf.length, sliceBytes - inSlice);
      const { bytesRead } = await fh.read(buf, 0, want, pos);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
      inSlice += bytesRead;
      if (inSlice === sliceBytes) {
        out.push(h.digest('hex'));
        h = createHash('sha256');
        inSlice = 0;
      }
    }
    if (inSlice > 0 && out.length < count) out.push(h.digest('hex'));
    return out;
  } finally {
    await fh.close();
  }
}

/** sliceDigestsOf over a ranged reader: one read of the slices asked (the source clamps the end to the file). */
async function streamedSliceDigests(src: Exclude<SliceSource, string>, sliceBytes: number, first: number, count: number): Promise<string[]> {
  const out: string[] = [];
  const start = first * sliceBytes;
  const end = count === Infinity ? Number.MAX_SAFE_INTEGER : start + count * sliceBytes;
  let h = createHash('sha256');
  let inSlice = 0;
  for await (const chunk of src.read(start, end)) {
    let c = chunk;
    while (c.length > 0) {
      const take = Math.min(c.length, sliceBytes - inSlice);
      h.update(c.subarray(0, take));
      inSlice += take;
      c = c.subarray(take);
      if (inSlice === sliceBytes) {
        out.push(h.digest('hex'));
        h = createHash('sha256');
        inSlice = 0;
      }
    }
  }
  if (inSlice > 0 && out.length < count) out.push(h.digest('hex'));
  return out;
}
