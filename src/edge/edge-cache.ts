import { LRUCache } from 'lru-cache';
import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/logger.js';
import { contentTypeFor } from '../common/mime.js';
import { objectKey } from '../common/paths.js';
import { type ByteRange, parseContentRange } from '../common/range.js';
import type { ObjectMeta } from '../common/response-plan.js';
import type { DiskTier, SliceLease, StoredMeta } from './disk-tier.js';
import { computeFreshness } from './freshness.js';
import { type MemorySlice, MemoryTier, holdsLittleMore, sliceKey } from './memory-tier.js';
import { SliceFetch, SliceLock } from './slice-lock.js';
import { type PurgeSelector, purgeMatchesKey } from '../common/purge-selector.js';
import { sliceBounds, slicesFor } from './slice-math.js';
import { LaneTicket } from './prefetch-lane.js';
import { type Upstream, type UpstreamResponse, UpstreamError, toUpstreamError } from './upstream.js';

/**
 * Where a response's bytes come from: Pingora's cache phase, spoken in X-Cache.
 * HIT-FILL: joined a fetch another request started (no upstream traffic of its own), as nginx
 * and Varnish count it.
 */
export type Tier = 'HIT-MEM' | 'HIT-DISK' | 'HIT-FILL' | 'MISS';

export const TIERS: readonly Tier[] = ['HIT-MEM', 'HIT-DISK', 'HIT-FILL', 'MISS'];

/**
 * One version of an object's bytes (size, ETag, Last-Modified), as a string: every slice an
 * answer reads, from any tier, must carry the representation the answer started with.
 */
export function representationOf(m: { size: number; etag?: string; lastModified?: string }): string {
  return JSON.stringify([m.size, m.etag ?? null, m.lastModified ?? null]);
}

/**
 * An answer's representation was replaced under it (the object changed upstream, or was purged
 * and refetched): the answer is cut rather than finished with another version's bytes.
 */
export class RepresentationChanged extends Error {
  /** If it escapes before the first byte, a clean 502 that says why. */
  readonly statusCode = 502;
  readonly expose = true;

  constructor(readonly key: string) {
    super('bad gateway: the object changed upstream while it was being served; retry');
    this.name = 'RepresentationChanged';
  }
}

/** What the edge knows of an object's current representation. */
export interface CachedMeta extends ObjectMeta {
  key: string;
  /** `representationOf` this meta. */
  rep: string;
  title: string;
  file: string;
  storable: boolean;
  /** Epoch ms the representation was fetched or last revalidated. */
  storedAt: number;
  freshUntil: number;
  staleIfErrorUntil: number;
}

interface SliceHead {
  status: number;
  /** Fetched by another worker of the node and read from the shared disk: a HIT-FILL here. */
  shared?: boolean;
  meta?: CachedMeta;
  /** Size learnt from a 416 (Content-Range: bytes \*\/N). */
  unsatisfiedSize?: number;
}

/** A slice fetch that resolving an object started; the response joins it rather than racing it. */
export interface PrimedFetch {
  index: number;
  fetch: SliceFetch<SliceHead>;
  /** Another request started it: this answer adds no upstream traffic of its own (HIT-FILL). */
  joined: boolean;
  /** A prefetch started it, and this answer was counted as that prefetch's hit (it is not counted again). */
  prefetchHit?: boolean;
}

/**
 * Who a slice fetch is for: a client's answer, or a prefetch (src/edge/prefetch.ts) — whose
 * bytes also go to the memory tier, marked, so the client that asks next is a HIT-MEM and the
 * first read of them counts as a prefetch hit.
 */
export type FetchPurpose = 'client' | 'prefetch';

/** How one slice a prefetch asked for turned out (EdgeCache.prefetchSlice). */
export type PrefetchSliceOutcome =
  /** Already in a tier, or on its way for someone else: no bytes of the prefetch's own. */
  | { kind: 'cached' }
  /** Fetched upstream by this prefetch: `bytes` in memory (and to disk as a miss writes). */
  | { kind: 'fetched'; bytes: number }
  /** Upstream failed, or the object changed or went under it. */
  | { kind: 'failed'; reason: string };

/**
 * A fetch a prefetch started: `used` once a client joined it (its bytes were served: the hit is
 * counted); `ticket`: its upstream request's place in the prefetch lane, promoted to a client's
 * when a client joins it while it still waits there (prefetch-lane.ts).
 */
interface PrefetchMark {
  used: boolean;
  ticket: LaneTicket;
}

/** Keys whose last purge EdgeCache remembers by name (see EdgeCache.purgedSince). */
const REMEMBERED_PURGES = 100_000;

/** How long a HeldObject goes without renewing its LRU recency, ms (see HeldObject). */
export const HELD_TOUCH_MS = 1000;

/**
 * One representation of an object as a caller keeps it between requests — the hit path, per
 * remembered URL — so that a hot object is checked, not looked up: the cache marks it `retired`
 * when it replaces or drops that meta (the metas LRU's dispose), and the memory tier marks a slice
 * it lets go (MemorySlice.gone). Lookups renew an entry's LRU recency; through a held object it is
 * renewed at most every HELD_TOUCH_MS, far more often than either LRU turns over.
 */
export class HeldObject {
  retired = false;
  /** Slice 0 as the memory tier holds it, once a request found it there. */
  slice0: MemorySlice | undefined = undefined;

  constructor(
    readonly meta: CachedMeta,
    readonly slice0Key: string,
    /** When the LRUs' recency was last renewed for it (clock ms). */
    public touchedAt: number,
  ) {}
}

export type Resolution =
  | { kind: 'found'; meta: CachedMeta; stale: boolean; primed?: PrimedFetch }
  | { kind: 'not-found' };

/** Events the cache reports; metrics and health subscribe. */
export interface CacheEvents {
  upstreamFetch?(result: 'ok' | 'not-found' | 'error' | 'not-modified', bytes: number): void;
  coalescedWait?(): void;
  evicted?(tier: 'memory' | 'disk', bytes: number): void;
  diskWriteError?(): void;
  /** An answer was cut because its representation was replaced under it. */
  representationChanged?(): void;
}

/**
 * The workers of one edge node share its disk tier; before one fetches a slice upstream it asks
 * the others' permission, so the node fetches each slice once. 'stored': another worker fetched
 * and stored it while we waited — read it from the shared disk.
 */
export interface SliceClaims {
  claim(key: string, index: number): Promise<'fetch' | 'stored'>;
  /** Called once per granted claim, after the slice was stored (or could not be). */
  release(key: string, index: number): void;
}

export interface EdgeCacheOptions {
  disk: DiskTier;
  memoryBytes: number;
  sliceBytes: number;
  upstream: Upstream;
  clock: Clock;
  logger: Logger;
  events?: CacheEvents;
  /** How long an upstream 404 is remembered. */
  negativeTtlMs?: number;
  /** Set in a worker of a multi-worker node (see SliceClaims). */
  claims?: SliceClaims;
}

/**
 * The edge's cache: memory tier (lru-cache bounded in bytes) over the disk tier over
 * upstream, in slices. A slice missing everywhere is fetched once, however many requests
 * want it (SliceLock), and streamed to them as it arrives; whole, it goes to disk.
 * A disk hit is promoted to memory, so the memory tier holds what is asked twice.
 */
export class EdgeCache {
  private readonly memory: MemoryTier;
  private readonly metas = new LRUCache<string, CachedMeta>({
    max: 500_000,
    // Replaced, purged or evicted: whoever holds it looks the object up again.
    dispose: (meta) => {
      const h = this.held.get(meta);
      if (h) h.retired = true;
    },
  });
  /** HeldObjects by the meta they hold: one per representation, shared by every URL of the object. */
  private readonly held = new WeakMap<CachedMeta, HeldObject>();
  private readonly notFound = new LRUCache<string, number>({ max: 10_000 });
  private readonly lock = new SliceLock<SliceHead>();
  private readonly revalidations = new Map<string, Promise<'fresh' | 'changed' | 'gone'>>();
  /**
   * Purges in order (operator purges: `purge`): a fetch or revalidation notes the number when it
   * starts, and what it learns is kept only if its key was not purged since — an answer to a
   * request sent before a purge may be the version the purge was for. Bounded: a key whose
   * purge was forgotten counts as purged at `forgottenPurge` (the newest number forgotten).
   */
  private purgeSeq = 0;
  private readonly purgedAt = new Map<string, number>();
  private forgottenPurge = 0;
  /** Slice fetches running, also those a purge took out of the lock. */
  private running = 0;
  /** Slice fetches prefetches started (see FetchPurpose). */
  private readonly prefetchMarks = new WeakMap<SliceFetch<SliceHead>, PrefetchMark>();
  private prefetchAnswers = 0;
  private prefetchWasted = 0;
  readonly sliceBytes: number;

  constructor(private readonly opts: EdgeCacheOptions) {
    this.sliceBytes = opts.sliceBytes;
    this.memory = new MemoryTier({
      capacityBytes: opts.memoryBytes,
      onEvict: (bytes) => opts.events?.evicted?.('memory', bytes),
      onWastedPrefetch: (bytes) => (this.prefetchWasted += bytes),
    });
  }

  /**
   * Answers served bytes a prefetch brought, each counted once however many prefetched slices it
   * read: the first answer to read a prefetched slice in memory, or to join a prefetch's fetch
   * while it ran, claims the slice (reelcdn_edge_prefetch_hits_total).
   */
  get prefetchHits(): number {
    return this.prefetchAnswers;
  }

  /**
   * Bytes of prefetched slices the memory tier let go before any answer read them — evicted,
   * purged, or dropped for a newer version (reelcdn_edge_prefetch_wasted_bytes_total): prefetches
   * that fetched for nothing, the figure to tune maxBufferMs and the budget by.
   */
  get prefetchWastedBytes(): number {
    return this.prefetchWasted;
  }

  /** Whether `s` is a prefetched slice no answer read yet; claims it (see MemorySlice.prefetched). */
  private claimPrefetched(s: MemorySlice | undefined): boolean {
    if (s === undefined || !s.prefetched) return false;
    s.prefetched = false;
    return true;
  }

  /** Rebuilds what we know of objects from the disk tier's index (after `disk.open()`). */
  loadFromDisk(): void {
    for (const key of this.opts.disk.keys()) this.adoptFromDisk(key);
  }

  /**
   * Learns an object that reached the disk tier without passing through this cache — a file
   * the fill agent just verified and published — so it is served (and answers peers'
   * only-if-cached requests) at once, not only after a restart.
   */
  adoptFromDisk(key: string): void {
    const stored = this.opts.disk.meta(key);
    if (!stored) return;
    const [title, file] = JSON.parse(key) as [string, string];
    const prev = this.metas.get(key);
    const meta = this.toCachedMeta(key, title, file, stored, stored.storedAt);
    // Memory slices of the version this one replaces would never be served again (they carry
    // the old representation); free them now.
    if (prev && prev.rep !== meta.rep) this.memory.dropObject(key, Math.ceil(prev.size / this.sliceBytes));
    this.metas.set(key, meta);
  }

  /**
   * Adopts the disk tier's version of an object unless we already know that version: in a worker
   * of a multi-worker node, objects and versions other workers stored reach this cache so.
   */
  learnFromDisk(key: string): void {
    const stored = this.opts.disk.meta(key);
    if (stored && this.metas.get(key)?.rep !== representationOf(stored)) this.adoptFromDisk(key);
  }

  memoryStats(): { usedBytes: number; capacityBytes: number; slices: number } {
    return this.memory.stats();
  }

  get inflight(): number {
    return this.running;
  }

  private toCachedMeta(key: string, title: string, file: string, s: StoredMeta, at: number): CachedMeta {
    const f = computeFreshness({ cacheControl: s.cacheControl, lastModified: s.lastModified, now: at });
    return {
      key,
      rep: representationOf(s),
      title,
      file,
      ...s,
      storable: f.storable,
      freshUntil: f.freshUntil,
      staleIfErrorUntil: f.staleIfErrorUntil,
    };
  }

  /**
   * Finds the current representation of an object: cached and fresh, revalidated, or
   * learnt from the first slice fetch (the slice holding `hintOffset`, so a seek into a
   * cold file costs one upstream round trip, not two).
   */
  async resolve(title: string, file: string, hintOffset: number | undefined, traceparent?: string, purpose: FetchPurpose = 'client'): Promise<Resolution> {
    const key = objectKey(title, file);
    const now = this.opts.clock.now();
    const known = this.metas.get(key);
    if (known && now < known.freshUntil) return { kind: 'found', meta: known, stale: false };
    if (known) {
      try {
        const verdict = await this.revalidate(known, traceparent);
        if (verdict === 'fresh') return { kind: 'found', meta: this.metas.get(key) ?? known, stale: false };
        if (verdict === 'gone') return { kind: 'not-found' };
      } catch (err) {
        if (now < known.staleIfErrorUntil) {
          this.opts.logger.warn({ key, err: (err as Error).message }, 'serving stale (stale-if-error)');
          return { kind: 'found', meta: known, stale: true };
        }
        throw err;
      }
    }

    const neg = this.notFound.get(key);
    if (neg !== undefined && now < neg) return { kind: 'not-found' };

    let index = hintOffset === undefined ? 0 : Math.floor(hintOffset / this.sliceBytes);
    for (let attempt = 0; attempt < 2; attempt++) {
      const { fetch, joined, prefetchHit } = this.acquire(title, file, index, undefined, traceparent, purpose);
      if (prefetchHit) this.prefetchAnswers++;
      const head = await fetch.head;
      if (head.meta) return { kind: 'found', meta: head.meta, stale: false, primed: { index, fetch, joined: joined || head.shared === true, prefetchHit } };
      if (head.status === 404 || head.status === 410) return { kind: 'not-found' };
      if (head.status === 416 && index !== 0) {
        index = 0; // the hint was past the end; slice 0 tells the size and validators
        continue;
      }
      throw new UpstreamError(`upstream answered ${head.status}`, 502);
    }
    throw new UpstreamError('upstream could not say the object size', 502);
  }

  /** What is known of an object without asking upstream: fresh metadata, or nothing. */
  peek(title: string, file: string): CachedMeta | undefined {
    const meta = this.metas.get(objectKey(title, file));
    return meta && this.opts.clock.now() < meta.freshUntil ? meta : undefined;
  }

  /**
   * The tier a response needing these ranges is served from, decided before headers go out:
   * MISS if any slice needs an upstream fetch of its own, else HIT-FILL if any joins a fetch still
   * arriving, else HIT-DISK if any is on disk (or whole and being written there), else HIT-MEM.
   */
  tierFor(meta: CachedMeta, ranges: ByteRange[]): Tier {
    let tier: Tier = 'HIT-MEM';
    for (const r of ranges) {
      for (const i of slicesFor(r, this.sliceBytes)) {
        if (this.memory.has(meta.key, i, meta.rep)) continue;
        if (this.opts.disk.has(meta.key, i, meta)) {
          if (tier === 'HIT-MEM') tier = 'HIT-DISK';
          continue;
        }
        const inflight = this.lock.get(this.sliceKey(meta.key, i));
        const head = inflight?.knownHead;
        if (inflight && inflight.state !== 'failed' && (head === undefined || head.meta?.rep === meta.rep)) {
          // Whole and on its way to disk: read like a disk hit. Still arriving: a wait on another's fetch.
          if (inflight.state === 'done') {
            if (tier === 'HIT-MEM') tier = 'HIT-DISK';
          } else tier = 'HIT-FILL';
          continue;
        }
        return 'MISS';
      }
    }
    return tier;
  }

  /** The one memory slice that holds all of `range`, for a zero-copy answer; else undefined. */
  memorySlice(meta: CachedMeta, range: ByteRange): Buffer | undefined {
    const index = Math.floor(range.start / this.sliceBytes);
    const b = sliceBounds(index, this.sliceBytes, meta.size);
    if (range.end > b.end) return undefined;
    const s = this.memory.slice(meta.key, index, meta.rep);
    if (s === undefined) return undefined;
    if (this.claimPrefetched(s)) this.prefetchAnswers++;
    return part(s.data, range.start - b.start, range.end - b.start);
  }

  /** What `peek` finds, as a HeldObject to keep (the same one for every caller while the meta lasts). */
  hold(key: string): HeldObject | undefined {
    const meta = this.metas.get(key);
    const now = this.opts.clock.now();
    if (!meta || now >= meta.freshUntil) return undefined;
    let h = this.held.get(meta);
    if (!h) {
      h = new HeldObject(meta, sliceKey(key, 0), now);
      this.held.set(meta, h);
    }
    return h;
  }

  /** Whether `hold` would still give `h` at `now` (clock ms): neither replaced nor dropped, and fresh. */
  stillHeld(h: HeldObject, now: number): boolean {
    if (h.retired || now >= h.meta.freshUntil) return false;
    if (now - h.touchedAt >= HELD_TOUCH_MS) {
      h.touchedAt = now;
      // The lookups a request would have made, for their recency.
      this.metas.get(h.meta.key);
      if (h.slice0 !== undefined && !h.slice0.gone) this.memory.entry(h.slice0Key, h.meta.rep);
    }
    return true;
  }

  /** `memorySlice` of a held object: a range in slice 0 without a lookup once memory had it. */
  heldSlice(h: HeldObject, range: ByteRange): Buffer | undefined {
    if (range.start >= this.sliceBytes) return this.memorySlice(h.meta, range);
    if (range.end > Math.min(this.sliceBytes, h.meta.size)) return undefined;
    let s = h.slice0;
    if (s === undefined || s.gone) {
      s = h.slice0 = this.memory.entry(h.slice0Key, h.meta.rep);
      if (s === undefined) return undefined;
      if (this.claimPrefetched(s)) this.prefetchAnswers++;
    }
    return part(s.data, range.start, range.end);
  }

  /**
   * All of `range` from the memory and disk tiers as at most `maxSlices` buffers (disk hits
   * promoted to memory, as `read` does), or undefined if a slice needs upstream (or the range
   * is too long to hold at once): the caller then streams with `read`. Answering a cached range
   * with buffers rather than an async generator piped through a stream halves the per-response
   * work on disk hits and on memory hits spanning two slices.
   *
   * With `held`, disk slices are read into the disk tier's pooled buffers and their leases are
   * pushed there: the caller releases each once the answer is written (the socket is done with
   * the bytes), also when this returns undefined. A slice the memory tier keeps takes a reference
   * of its own that is never released, so that buffer leaves the pool for good.
   */
  async cachedPieces(meta: CachedMeta, range: ByteRange, maxSlices = 4, held?: SliceLease[]): Promise<Buffer[] | undefined> {
    if (range.end <= range.start) return undefined;
    const first = Math.floor(range.start / this.sliceBytes);
    const last = Math.floor((range.end - 1) / this.sliceBytes);
    if (last - first + 1 > maxSlices) return undefined;
    const pieces: Buffer[] = [];
    let prefetched = false;
    for (let index = first; index <= last; index++) {
      const b = sliceBounds(index, this.sliceBytes, meta.size);
      const from = Math.max(range.start, b.start) - b.start;
      const to = Math.min(range.end, b.end) - b.start;
      const s = this.memory.slice(meta.key, index, meta.rep);
      if (this.claimPrefetched(s) && !prefetched) {
        prefetched = true;
        this.prefetchAnswers++;
      }
      let buf = s?.data;
      if (!buf) {
        if (!this.opts.disk.has(meta.key, index, meta)) return undefined;
        buf = held ? await this.leaseFromDisk(meta, index, b.end - b.start, held) : await this.fromDisk(meta, index, b.end - b.start);
        if (!buf) return undefined;
      }
      pieces.push(from === 0 && to === buf.length ? buf : buf.subarray(from, to));
    }
    return pieces;
  }

  /** A whole slice from disk (offered to memory), or undefined if gone, damaged or of another length. */
  private async fromDisk(meta: CachedMeta, index: number, length: number): Promise<Buffer | undefined> {
    const data = await this.opts.disk.read(meta.key, index, meta);
    if (!data || data.length !== length) return undefined;
    this.memory.offer(meta.key, index, meta.rep, data);
    return data;
  }

  /** `fromDisk` into a pooled buffer whose lease joins `held`. */
  private async leaseFromDisk(meta: CachedMeta, index: number, length: number, held: SliceLease[]): Promise<Buffer | undefined> {
    const lease = await this.opts.disk.readLease(meta.key, index, meta);
    if (!lease) return undefined;
    held.push(lease);
    if (lease.data.length !== length) return undefined;
    // Kept as it is, the pooled buffer leaves the pool for good (a reference never released);
    // one much larger than the slice is copied by the tier instead, and the lease ends as usual.
    if (this.memory.offer(meta.key, index, meta.rep, lease.data) && holdsLittleMore(lease.data)) lease.retain();
    return lease.data;
  }

  /**
   * Yields the bytes of `range`, slice by slice, from whichever tier has them — only slices of
   * `meta`'s representation. If that representation is replaced mid-answer (the object changed
   * upstream), it throws RepresentationChanged: the answer is cut, never spliced.
   */
  async *read(meta: CachedMeta, range: ByteRange, primed?: PrimedFetch, traceparent?: string): AsyncGenerator<Buffer> {
    // This answer's prefetch hit is counted once, at the first prefetched slice it reads or joins.
    let prefetchCounted = primed?.prefetchHit === true;
    for (const index of slicesFor(range, this.sliceBytes)) {
      const b = sliceBounds(index, this.sliceBytes, meta.size);
      const from = Math.max(range.start, b.start) - b.start;
      const to = Math.min(range.end, b.end) - b.start;

      const s = this.memory.slice(meta.key, index, meta.rep);
      if (s) {
        if (this.claimPrefetched(s) && !prefetchCounted) {
          prefetchCounted = true;
          this.prefetchAnswers++;
        }
        yield s.data.subarray(from, to);
        continue;
      }
      if (this.opts.disk.has(meta.key, index, meta)) {
        const disk = await this.fromDisk(meta, index, b.end - b.start);
        if (disk) {
          yield disk.subarray(from, to);
          continue;
        }
      }
      let pos = from;
      for (let attempt = 0; ; attempt++) {
        let fetch: SliceFetch<SliceHead>;
        if (primed && primed.index === index && primed.fetch.state !== 'failed') fetch = primed.fetch;
        else {
          const got = this.acquire(meta.title, meta.file, index, meta, traceparent);
          if (got.prefetchHit && !prefetchCounted) {
            prefetchCounted = true;
            this.prefetchAnswers++;
          }
          fetch = got.fetch;
        }
        try {
          const head = await fetch.head;
          // No meta: upstream refused; reading the fetch throws its error (and a new writer is tried).
          if (head.meta && head.meta.rep !== meta.rep) throw new RepresentationChanged(meta.key);
          for await (const piece of fetch.read(pos, to)) {
            pos += piece.length;
            yield piece;
          }
          if (pos < to) throw new UpstreamError('upstream slice shorter than expected', 502);
          break;
        } catch (err) {
          if (err instanceof RepresentationChanged) {
            this.opts.events?.representationChanged?.();
            this.opts.logger.warn({ key: meta.key, index }, 'object changed upstream mid-answer; answer cut');
            throw err;
          }
          // The writer failed: one new writer is elected and we resume where we were.
          if (attempt >= 1) throw toUpstreamError(err);
          if (primed?.index === index) primed = undefined;
        }
      }
    }
  }

  /**
   * Starts (or joins) the upstream fetch of the first slice of `range` that no tier holds and
   * waits for upstream's answer head, so a dead upstream is a clean 502/504 before any header
   * goes out, and a changed object is noticed before a byte of the old one is promised.
   * Undefined when every slice is already held.
   */
  async prime(meta: CachedMeta, range: ByteRange, traceparent?: string): Promise<PrimedFetch | undefined> {
    for (const index of slicesFor(range, this.sliceBytes)) {
      if (this.memory.has(meta.key, index, meta.rep) || this.opts.disk.has(meta.key, index, meta)) continue;
      const { fetch, joined, prefetchHit } = this.acquire(meta.title, meta.file, index, meta, traceparent);
      if (prefetchHit) this.prefetchAnswers++;
      const head = await fetch.head;
      if (!head.meta) {
        // Gone upstream: resolving again tells the client so. Anything else is upstream's failure.
        if (head.status === 404 || head.status === 410) throw new RepresentationChanged(meta.key);
        throw new UpstreamError(`upstream answered ${head.status}`, 502);
      }
      if (head.meta.rep !== meta.rep) throw new RepresentationChanged(meta.key);
      return { index, fetch, joined: joined || head.shared === true, prefetchHit };
    }
    return undefined;
  }

  private sliceKey(key: string, index: number): string {
    return sliceKey(key, index);
  }

  private acquire(title: string, file: string, index: number, known: CachedMeta | undefined, traceparent?: string, purpose: FetchPurpose = 'client') {
    const key = objectKey(title, file);
    const got = this.lock.acquire(this.sliceKey(key, index), (fetch) => {
      if (purpose === 'prefetch') this.prefetchMarks.set(fetch, { used: false, ticket: new LaneTicket() });
      void this.runFetch(fetch, key, title, file, index, known, traceparent);
    });
    let prefetchHit = false;
    if (got.joined && purpose === 'client') {
      this.opts.events?.coalescedWait?.();
      // A client joining a prefetch while it runs is served the prefetch's bytes: the caller counts its hit, once.
      const mark = this.prefetchMarks.get(got.fetch);
      // A client waits on it now: it is no longer behind the clients in the upstream pool.
      mark?.ticket.promote();
      if (mark && !mark.used) mark.used = prefetchHit = true;
    }
    return { fetch: got.fetch, joined: got.joined, prefetchHit };
  }

  /**
   * The prefetch seam's lookup (src/edge/prefetch.ts): whether slice `index` of `meta` is held by
   * a tier or on its way (someone's fetch running), i.e. whether a prefetch has nothing to bring.
   */
  holdsOrFetches(meta: CachedMeta, index: number): boolean {
    if (this.memory.has(meta.key, index, meta.rep) || this.opts.disk.has(meta.key, index, meta)) return true;
    const inflight = this.lock.get(this.sliceKey(meta.key, index));
    return inflight !== undefined && inflight.state !== 'failed';
  }

  /**
   * The prefetch seam's fetch: slice `index` of `meta`, fetched upstream as a miss would fetch it
   * (one fetch per slice, joined by any request meanwhile; representation checked; stored to
   * disk) and kept in memory, marked as prefetched. Resolves once its bytes are in (not when the
   * disk write ends). `primed`: the fetch a `resolve(…, 'prefetch')` started for this slice.
   * Nothing is fetched for a slice a tier holds or someone is already fetching.
   */
  async prefetchSlice(meta: CachedMeta, index: number, traceparent?: string, primed?: PrimedFetch): Promise<PrefetchSliceOutcome> {
    let fetch: SliceFetch<SliceHead>;
    if (primed && primed.index === index) {
      if (primed.joined) return { kind: 'cached' };
      fetch = primed.fetch;
    } else {
      if (this.holdsOrFetches(meta, index)) return { kind: 'cached' };
      const got = this.acquire(meta.title, meta.file, index, meta, traceparent, 'prefetch');
      if (got.joined) return { kind: 'cached' };
      fetch = got.fetch;
    }
    await fetch.settled();
    if (fetch.state === 'failed') return { kind: 'failed', reason: fetch.error?.message ?? 'upstream fetch failed' };
    const head = fetch.knownHead;
    if (head?.meta?.rep !== meta.rep) return { kind: 'failed', reason: 'the object changed upstream' };
    // Read by another worker from the shared disk: no upstream bytes of ours.
    if (head.shared) return { kind: 'cached' };
    return { kind: 'fetched', bytes: fetch.length };
  }

  /**
   * A prefetch's slice whose bytes are in: into memory at once (the client asking next finds it
   * there, a HIT-MEM), marked unless a client already joined the fetch — only while its
   * representation is still the object's current one, as `store` keeps slices.
   */
  private keepPrefetched(fetch: SliceFetch<SliceHead>, key: string, index: number, meta: CachedMeta, data: Buffer, started: number): void {
    const mark = this.prefetchMarks.get(fetch);
    if (!mark || !meta.storable || !this.isCurrent(key, meta.rep) || this.purgedSince(key, started)) return;
    this.memory.set(key, index, meta.rep, data, !mark.used);
  }

  /** The writer of one slice: fetch, stream to waiters, store, release — always with a reason. */
  private async runFetch(
    fetch: SliceFetch<SliceHead>,
    key: string,
    title: string,
    file: string,
    index: number,
    known: CachedMeta | undefined,
    traceparent?: string,
  ): Promise<void> {
    const lockKey = this.sliceKey(key, index);
    const started = this.purgeSeq;
    this.running++;
    const start = index * this.sliceBytes;
    const wantEnd = known ? Math.min(start + this.sliceBytes, known.size) : start + this.sliceBytes;
    let upstreamBytes = 0;
    const claims = this.opts.claims;
    let res: UpstreamResponse | undefined;
    try {
      if (claims && (await claims.claim(key, index)) === 'stored' && (await this.fromSharedDisk(fetch, key, title, file, index, known, started))) return;
      res = await this.opts.upstream.request({ title, file, start, end: wantEnd, traceparent, prefetch: this.prefetchMarks.get(fetch)?.ticket });
      const now = this.opts.clock.now();
      if (res.status !== 206 && res.status !== 200) {
        await res.dump();
        let unsatisfiedSize: number | undefined;
        if (res.status === 416) {
          const cr = parseContentRange(res.headers['content-range']);
          if (cr && 'unsatisfied' in cr) unsatisfiedSize = cr.size;
        }
        if (res.status === 416 && index === 0 && unsatisfiedSize === 0) {
          // An empty object: no slice holds it, yet it exists; the 416 carries its validators.
          // Its Content-Type is the 416's own, not the object's: the extension says it.
          const meta = { ...this.metaFrom(key, title, file, 0, res.headers, now), contentType: contentTypeFor(file) };
          if (meta.storable && !this.purgedSince(key, started)) this.metas.set(key, meta);
          this.opts.events?.upstreamFetch?.('ok', 0);
          fetch.setHead({ status: res.status, meta, unsatisfiedSize });
          fetch.finish();
          return;
        }
        if (res.status === 404 || res.status === 410) {
          if (!this.purgedSince(key, started)) this.notFound.set(key, now + (this.opts.negativeTtlMs ?? 10_000));
          this.opts.events?.upstreamFetch?.('not-found', 0);
        } else {
          this.opts.events?.upstreamFetch?.('error', 0);
        }
        fetch.setHead({ status: res.status, unsatisfiedSize });
        fetch.fail(new UpstreamError(`upstream answered ${res.status}`, 502));
        return;
      }

      let size: number;
      let skip = 0; // bytes to drop before the slice starts (an upstream that ignores Range)
      let cr: ReturnType<typeof parseContentRange>;
      if (res.status === 206) {
        cr = parseContentRange(res.headers['content-range']);
        if (!cr || 'unsatisfied' in cr) throw new UpstreamError('upstream 206 without a usable Content-Range', 502);
        size = cr.size;
      } else {
        const len = Number(res.headers['content-length']);
        if (!Number.isSafeInteger(len)) throw new UpstreamError('upstream 200 without Content-Length', 502);
        size = len;
        skip = start;
      }
      const meta = this.metaFrom(key, title, file, size, res.headers, now);
      if (known && known.rep !== meta.rep) {
        // The object changed upstream under a cached copy. Its old version goes (unless a newer
        // one is already current); readers of the old one see the new head and cut their answers.
        if ((this.metas.get(key)?.rep ?? known.rep) === known.rep) this.purgeKey(key);
        this.opts.logger.info({ key, index, was: known.etag, now: meta.etag }, 'object changed upstream');
      }
      const b = sliceBounds(index, this.sliceBytes, size);
      const expected = b.end - b.start;
      if (cr && !('unsatisfied' in cr) && (cr.start !== start || cr.end !== b.end)) {
        if (known && known.rep !== meta.rep) {
          // Asked with the old size in mind: these bytes are no slice of the new version.
          await res.dump();
          fetch.setHead({ status: res.status, meta });
          throw new RepresentationChanged(key);
        }
        throw new UpstreamError(`upstream sent bytes ${cr.start}-${cr.end - 1}, asked for ${start}-`, 502);
      }
      if (expected <= 0) throw new UpstreamError('slice past the end of the object', 502);

      const stored: StoredMeta = {
        size,
        contentType: meta.contentType,
        etag: meta.etag,
        lastModified: meta.lastModified,
        cacheControl: meta.cacheControl,
        storedAt: now,
      };
      if (meta.storable && !this.purgedSince(key, started)) this.metas.set(key, meta);
      fetch.setHead({ status: res.status, meta });

      let received = 0;
      let data: Buffer | undefined;
      for await (const raw of res.body) {
        let chunk = raw;
        upstreamBytes += chunk.length;
        if (data) continue; // past the slice (a 206 longer than asked): read to its end
        if (skip > 0) {
          if (chunk.length <= skip) {
            skip -= chunk.length;
            continue;
          }
          chunk = chunk.subarray(skip);
          skip = 0;
        }
        if (received + chunk.length > expected) chunk = chunk.subarray(0, expected - received);
        fetch.push(chunk);
        received += chunk.length;
        if (received >= expected) {
          // Done as soon as the bytes are in: readers must not wait for the body's end.
          data = fetch.finish();
          this.memory.noteRecent(key, index, data.length);
          this.keepPrefetched(fetch, key, index, meta, data, started);
          // A 200 (upstream ignored Range) would send the rest of the object: cut it here. A 206
          // ends by itself: read to that end, so its connection goes back to the pool — cutting
          // a body aborts the request, and undici closes the connection.
          if (res.status !== 206) break;
        }
      }
      if (!data) throw new UpstreamError(`upstream body ended after ${received} of ${expected} bytes`, 502);
      if (res.status === 200) await res.dump();
      this.opts.events?.upstreamFetch?.('ok', upstreamBytes);
      if (meta.storable) await this.store(key, index, meta.rep, stored, data, started);
    } catch (err) {
      // A body left unread would hold its connection (and its place in the prefetch lane) for good.
      void res?.dump();
      if (err instanceof RepresentationChanged) {
        this.opts.events?.upstreamFetch?.('ok', upstreamBytes);
        fetch.fail(err);
        return;
      }
      const e = toUpstreamError(err);
      this.opts.events?.upstreamFetch?.('error', upstreamBytes);
      this.opts.logger.warn({ key, index, err: e.message }, 'upstream slice fetch failed');
      fetch.fail(e);
    } finally {
      this.running--;
      this.lock.release(lockKey, fetch);
      claims?.release(key, index);
    }
  }

  /**
   * Another worker stored the slice while we waited on its claim: our waiters get it from the
   * shared disk. False (fetch it ourselves) if it is already gone or of another representation.
   */
  private async fromSharedDisk(
    fetch: SliceFetch<SliceHead>,
    key: string,
    title: string,
    file: string,
    index: number,
    known: CachedMeta | undefined,
    started: number,
  ): Promise<boolean> {
    const stored = this.opts.disk.meta(key);
    if (!stored) return false;
    const rep = representationOf(stored);
    const current = this.metas.get(key);
    if ((known && known.rep !== rep) || (current && current.rep !== rep)) return false;
    const data = await this.opts.disk.read(key, index, stored);
    // Purged while we read: what the disk held then is what the purge was for.
    if (!data || this.purgedSince(key, started)) return false;
    const meta = current ?? this.toCachedMeta(key, title, file, stored, stored.storedAt);
    if (!current && meta.storable) this.metas.set(key, meta);
    fetch.setHead({ status: 206, meta, shared: true });
    fetch.push(data);
    fetch.finish();
    this.memory.noteRecent(key, index, data.length);
    this.keepPrefetched(fetch, key, index, meta, data, started);
    return true;
  }

  /** What an upstream answer says of the object's representation and its freshness. */
  private metaFrom(
    key: string,
    title: string,
    file: string,
    size: number,
    headers: Record<string, string | undefined>,
    now: number,
  ): CachedMeta {
    const cacheControl = headers['cache-control'];
    const lastModified = headers['last-modified'];
    const fresh = computeFreshness({ cacheControl, age: headers.age, date: headers.date, lastModified, now });
    const etag = headers.etag;
    return {
      key,
      rep: representationOf({ size, etag, lastModified }),
      title,
      file,
      size,
      contentType: headers['content-type'] ?? contentTypeFor(file),
      etag,
      lastModified,
      cacheControl,
      storedAt: now,
      storable: fresh.storable,
      freshUntil: fresh.freshUntil,
      staleIfErrorUntil: fresh.staleIfErrorUntil,
    };
  }

  /**
   * Keeps a fetched slice: on disk, or in memory when the disk has no room or fails — but only
   * while its representation is still the object's current one. A slice of a version purged or
   * replaced while it was fetched or written is dropped, never kept where a reader of the new
   * version could find it (the disk tier refuses a write its key was purged during).
   */
  private async store(key: string, index: number, rep: string, meta: StoredMeta, data: Buffer, started: number): Promise<void> {
    if (!this.isCurrent(key, rep) || this.purgedSince(key, started)) return;
    try {
      const outcome = await this.opts.disk.write(key, index, meta, data);
      if (outcome !== 'no-room') return;
    } catch (err) {
      this.opts.events?.diskWriteError?.();
      this.opts.logger.error({ key, index, err: (err as Error).message }, 'disk write failed, keeping the slice in memory only');
    }
    // A prefetch put it there already (keepPrefetched): keep its mark.
    if (this.isCurrent(key, rep) && !this.purgedSince(key, started) && !this.memory.has(key, index, rep)) this.memory.set(key, index, rep, data);
  }

  private isCurrent(key: string, rep: string): boolean {
    return this.metas.get(key)?.rep === rep;
  }

  /** Whether `key` was purged after `seq` (a `purgeSeq` noted when some work started). */
  private purgedSince(key: string, seq: number): boolean {
    return (this.purgedAt.get(key) ?? this.forgottenPurge) > seq;
  }

  private notePurge(key: string): void {
    const seq = ++this.purgeSeq;
    // Oldest first: the one forgotten is always the oldest remembered.
    this.purgedAt.delete(key);
    this.purgedAt.set(key, seq);
    if (this.purgedAt.size > REMEMBERED_PURGES) {
      const [oldest, at] = this.purgedAt.entries().next().value!;
      this.purgedAt.delete(oldest);
      this.forgottenPurge = at;
    }
  }

  /** Asks upstream whether a stale representation is still current. */
  private revalidate(meta: CachedMeta, traceparent?: string): Promise<'fresh' | 'changed' | 'gone'> {
    let p = this.revalidations.get(meta.key);
    if (p) return p;
    p = (async () => {
      const started = this.purgeSeq;
      const res = await this.opts.upstream.request({
        title: meta.title,
        file: meta.file,
        start: 0,
        end: Math.max(1, Math.min(this.sliceBytes, meta.size)),
        ifNoneMatch: meta.etag,
        ifModifiedSince: meta.etag ? undefined : meta.lastModified,
        traceparent,
      });
      await res.dump();
      const now = this.opts.clock.now();
      const cr = parseContentRange(res.headers['content-range']);
      const sameRep =
        res.status === 304 ||
        ((res.status === 206 || res.status === 200) &&
          res.headers.etag !== undefined &&
          res.headers.etag === meta.etag &&
          (cr === undefined || ('size' in cr && cr.size === meta.size)));
      // Purged while we asked: this answer may be of the version the purge was for; resolve fetches anew.
      if (this.purgedSince(meta.key, started)) return 'changed' as const;
      if (sameRep) {
        const cacheControl = res.headers['cache-control'] ?? meta.cacheControl;
        const f = computeFreshness({ cacheControl, age: res.headers.age, date: res.headers.date, lastModified: meta.lastModified, now });
        this.metas.set(meta.key, { ...meta, cacheControl, storedAt: now, freshUntil: f.freshUntil, staleIfErrorUntil: f.staleIfErrorUntil });
        this.opts.disk.touchValidated(meta.key, now, cacheControl);
        this.opts.events?.upstreamFetch?.('not-modified', 0);
        return 'fresh' as const;
      }
      if (res.status === 404 || res.status === 410) {
        this.purgeKey(meta.key);
        this.notFound.set(meta.key, now + (this.opts.negativeTtlMs ?? 10_000));
        return 'gone' as const;
      }
      if (res.status >= 500) throw new UpstreamError(`upstream answered ${res.status}`, 502);
      this.purgeKey(meta.key);
      return 'changed' as const;
    })().finally(() => this.revalidations.delete(meta.key));
    this.revalidations.set(meta.key, p);
    return p;
  }

  private purgeKey(key: string): number {
    const meta = this.metas.get(key);
    this.metas.delete(key);
    this.notFound.delete(key);
    let freed = this.opts.disk.purge(key);
    if (meta) freed += this.memory.dropObject(key, Math.ceil(meta.size / this.sliceBytes));
    return freed;
  }

  /** Purges what the selector names (purge-selector.ts). Returns objects and bytes removed. */
  purge(sel: PurgeSelector): { objects: number; bytes: number } {
    const keys = new Set<string>();
    if (sel.file !== undefined) keys.add(objectKey(sel.title, sel.file));
    else {
      const matches = (k: string) => purgeMatchesKey(sel, k);
      for (const k of this.metas.keys()) if (matches(k)) keys.add(k);
      for (const k of this.opts.disk.keys()) if (matches(k)) keys.add(k);
      for (const k of this.notFound.keys()) if (matches(k)) keys.add(k);
      for (const sk of this.lock.keys()) if (matches(objectKeyOfSlice(sk))) keys.add(objectKeyOfSlice(sk));
    }
    let bytes = 0;
    for (const k of keys) {
      this.notePurge(k);
      bytes += this.purgeKey(k);
    }
    // Fetches started before the purge (finished ones too, until stored): no later request
    // joins them or reads them as disk hits; they keep nothing (purgedSince).
    this.lock.forgetWhere((sk) => keys.has(objectKeyOfSlice(sk)));
    // Memory slices of objects whose meta was already evicted.
    bytes += this.memory.dropWhere((k) => keys.has(k) || (sel.file === undefined && purgeMatchesKey(sel, k)));
    return { objects: keys.size, bytes };
  }
}

/** The object key of a `sliceKey`. */
function objectKeyOfSlice(sk: string): string {
  return sk.slice(0, sk.lastIndexOf('#'));
}

/** Bytes [from, to) of a slice: the slice itself when that is all of it (no view to allocate). */
function part(buf: Buffer, from: number, to: number): Buffer {
  return from === 0 && to === buf.length ? buf : buf.subarray(from, to);
}
