import { LRUCache } from 'lru-cache';

/**
 * The buffer behind `data` is not much larger than `data` (what a cache may keep as it is and
 * count by its length): at most a quarter more, or 64 KiB for small ones.
 */
export function holdsLittleMore(data: Buffer): boolean {
  return data.buffer.byteLength <= data.length + Math.max(64 * 1024, data.length >>> 2);
}

/** A slice in memory, tagged with the representation its bytes belong to. */
export interface MemorySlice {
  readonly rep: string;
  /** Its bytes; emptied once the tier lets the slice go, so a holder keeps none the tier no longer counts. */
  data: Buffer;
  /**
   * Set once the tier lets the slice go (evicted, dropped, replaced). A caller that keeps an entry
   * between requests (EdgeCache's HeldObject) checks this instead of looking the slice up again.
   */
  gone: boolean;
  /**
   * Brought by a prefetch (src/edge/prefetch.ts) and not read for an answer since: the first
   * answer reading it clears this (EdgeCache counts that answer as a prefetch hit, once).
   */
  prefetched: boolean;
}

const NO_BYTES = Buffer.alloc(0);

export interface MemoryTierOptions {
  capacityBytes: number;
  onEvict?: (bytes: number) => void;
  /** A prefetched slice no answer read was let go (evicted, purged, of a replaced version): its bytes were fetched for nothing. */
  onWastedPrefetch?: (bytes: number) => void;
}

/**
 * The memory tier: slices bounded in bytes (lru-cache), each tagged with its representation.
 * A lookup names the representation it wants, so a slice left over from another version of the
 * object is never returned, whatever order purges, revalidations and fills ran in.
 *
 * Admission is 2Q: a slice read from disk enters only if it was seen recently (fetched, or read
 * from disk, within the last ~2× capacity of slices). A working set larger than memory then
 * streams from disk instead of churning this tier.
 */
export class MemoryTier {
  private readonly slices: LRUCache<string, MemorySlice>;
  /** Slices seen recently but not (yet) admitted, with their sizes: the 2Q ghost list. */
  private readonly recent: LRUCache<string, number>;

  constructor(private readonly opts: MemoryTierOptions) {
    this.slices = new LRUCache<string, MemorySlice>({
      maxSize: opts.capacityBytes,
      sizeCalculation: (s) => Math.max(1, s.data.length),
      dispose: (s, _k, reason) => {
        if (reason === 'evict') opts.onEvict?.(s.data.length);
        // Replaced ('set') by the same slice, it is not lost: only a slice that leaves unread is.
        if (s.prefetched && (reason === 'evict' || reason === 'delete')) opts.onWastedPrefetch?.(s.data.length);
        s.gone = true;
        s.data = NO_BYTES;
      },
    });
    // Counted in bytes, so small objects (one small slice each) are remembered in proportion.
    this.recent = new LRUCache<string, number>({ maxSize: 2 * opts.capacityBytes, max: 200_000, sizeCalculation: (n) => Math.max(1, n) });
  }

  stats(): { usedBytes: number; capacityBytes: number; slices: number } {
    return { usedBytes: this.slices.calculatedSize, capacityBytes: this.opts.capacityBytes, slices: this.slices.size };
  }

  /** Slice `index` of `key` if memory holds it for representation `rep`; a stale version is dropped. */
  get(key: string, index: number, rep: string): Buffer | undefined {
    return this.entry(sliceKey(key, index), rep)?.data;
  }

  /** `get`, as the entry: for a reader that also looks at its prefetch mark. */
  slice(key: string, index: number, rep: string): MemorySlice | undefined {
    return this.entry(sliceKey(key, index), rep);
  }

  /** `get` by the slice's key (`sliceKey`), as the entry itself: for a caller that keeps it (see MemorySlice.gone). */
  entry(sk: string, rep: string): MemorySlice | undefined {
    const s = this.slices.get(sk);
    if (!s) return undefined;
    if (s.rep === rep) return s;
    this.slices.delete(sk);
    return undefined;
  }

  has(key: string, index: number, rep: string): boolean {
    return this.slices.peek(sliceKey(key, index))?.rep === rep;
  }

  /**
   * Keeps a slice. A view into a much larger buffer (a socket read's, a pooled disk read's) is
   * copied first: the tier counts `data.length`, and must not hold more memory than it counts.
   * `prefetched`: a prefetch brought it and nobody has read it yet.
   */
  set(key: string, index: number, rep: string, data: Buffer, prefetched = false): void {
    this.slices.set(sliceKey(key, index), { rep, data: holdsLittleMore(data) ? data : Buffer.from(data), gone: false, prefetched });
  }

  /** Remembers a slice just fetched: a second request soon after earns it a place. */
  noteRecent(key: string, index: number, bytes: number): void {
    this.recent.set(sliceKey(key, index), bytes);
  }

  /** Offers a slice read from disk: admitted only if it was seen recently (2Q). True if it was kept. */
  offer(key: string, index: number, rep: string, data: Buffer): boolean {
    const sk = sliceKey(key, index);
    if (this.recent.has(sk)) {
      this.recent.delete(sk);
      this.set(key, index, rep, data);
      return true;
    }
    this.recent.set(sk, data.length);
    return false;
  }

  /** Drops every slice of `key` (any representation) among its first `sliceCount`; returns bytes freed. */
  dropObject(key: string, sliceCount: number): number {
    let freed = 0;
    for (let i = 0; i < sliceCount; i++) {
      const sk = sliceKey(key, i);
      freed += this.slices.peek(sk)?.data.length ?? 0;
      this.slices.delete(sk);
    }
    return freed;
  }

  /** Drops every slice whose object key matches; for purges of objects whose size is no longer known. */
  dropWhere(matches: (key: string) => boolean): number {
    let freed = 0;
    for (const sk of [...this.slices.keys()]) {
      if (!matches(sk.slice(0, sk.lastIndexOf('#')))) continue;
      freed += this.slices.peek(sk)?.data.length ?? 0;
      this.slices.delete(sk);
    }
    return freed;
  }
}

/** The memory tier's key of slice `index` of the object `key`. */
export function sliceKey(key: string, index: number): string {
  return `${key}#${index}`;
}
