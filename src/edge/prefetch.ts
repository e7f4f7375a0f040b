import type { PrefetchConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import type { ByteRange } from '../common/range.js';
import type { CachedMeta, EdgeCache, PrimedFetch } from './edge-cache.js';
import { admitPrefetch, prefetchCap, reserveBytes } from './prefetch-budget.js';
import type { PrefetchAsk, Prefetcher } from './prefetch-hook.js';
import type { PrefetchCounts, PrefetchOutcome } from './prefetch-metrics.js';
import { type NextRange, nextObject, prefetchRange } from './prefetch-target.js';
import { sliceBounds, slicesFor } from './slice-math.js';

export type { PrefetchAsk, Prefetcher } from './prefetch-hook.js';

/** The cache as a prefetch uses it: its lookup and fetch seams, nothing else. */
export type PrefetchCache = Pick<EdgeCache, 'peek' | 'resolve' | 'holdsOrFetches' | 'prefetchSlice' | 'sliceBytes'>;

export interface EdgePrefetcherOptions {
  cache: PrefetchCache;
  /** Read on every ask: a reload changes it. A worker of a multi-worker node gets its share (prefetchShare). */
  settings: () => PrefetchConfig;
  /** The node is overloaded or draining: no prefetch starts, and a running one stops between slices. */
  busy: () => boolean;
  logger: Logger;
  counts: PrefetchCounts;
  /** Runs a prefetch later than the answer that asked for it (default setImmediate: after this turn's I/O). */
  schedule?: (run: () => void) => void;
}

/** Longest `nor` quoted in a log line: what a client sends is bounded before it is logged. */
const LOGGED_NOR = 200;

/**
 * The edge's CMCD-driven prefetch: a player that says which object (`nor`) or range (`nrr`) it
 * will ask next has it fetched into the memory tier while the current answer goes out, so its
 * next request is a HIT-MEM. Decisions are taken in `consider` (synchronous, cheap when it
 * declines): target inside the title (prefetch-target.ts), the player's buffer, the node's load,
 * the budget (prefetch-budget.ts). A prefetch that starts runs after the current turn of the
 * loop, one slice at a time through the cache's usual miss path (EdgeCache.prefetchSlice): one
 * upstream fetch per slice shared with any request that wants it meanwhile, stored to disk as a
 * miss is, kept in memory. It answers no client, so it is counted as prefetch, never as a MISS.
 */
export class EdgePrefetcher implements Prefetcher {
  /** Prefetches started and not finished, by what they fetch: one per object and range at a time. Bounded by maxConcurrent. */
  private readonly active = new Set<string>();
  private bytesInFlight = 0;
  private readonly schedule: (run: () => void) => void;

  constructor(private readonly opts: EdgePrefetcherOptions) {
    this.schedule = opts.schedule ?? ((run) => void setImmediate(run));
  }

  /** What runs now: prefetches and the bytes they reserved and have not brought yet. */
  load(): { running: number; bytesInFlight: number } {
    return { running: this.active.size, bytesInFlight: this.bytesInFlight };
  }

  /** Callers go through askPrefetcher (prefetch-hook.ts), the one guard: a bug here costs the answer under way nothing. */
  consider(ask: PrefetchAsk): void {
    const cfg = this.opts.settings();
    if (!cfg.enabled) return;
    const { counts, logger } = this.opts;
    // A HEAD brings the client no body: it is no measure of a next object to bring on its word.
    const target = ask.head ? ({ ok: false, reason: 'HEAD request' } as const) : nextObject(ask.title, ask.file, ask.cmcd);
    if (!target.ok) {
      counts.outcome('refused');
      if (logger.isLevelEnabled('debug')) {
        logger.debug({ title: ask.title, file: ask.file, nor: ask.cmcd.nor?.slice(0, LOGGED_NOR), nrr: ask.cmcd.nrr?.slice(0, LOGGED_NOR), remote: ask.remote, reason: target.reason }, 'prefetch refused');
      }
      return;
    }
    const cap = prefetchCap(cfg, ask.answerBytes, this.opts.cache.sliceBytes);
    // Nothing to bring (a warm edge, a player ahead of nobody): told apart from the reasons not to fetch.
    if (this.holdsAll(target.title, target.file, target.range, cap)) return counts.outcome('cached');
    const verdict = admitPrefetch(cfg, this.load(), ask.cmcd.bl, this.opts.busy(), this.opts.cache.sliceBytes);
    if (verdict !== 'start') return counts.outcome(verdict);
    const id = JSON.stringify([target.title, target.file, target.range?.header ?? '']);
    if (this.active.has(id)) return counts.outcome('cached');
    this.active.add(id);
    // One slice reserved until the object's size says how much it will bring.
    const provisional = this.opts.cache.sliceBytes;
    this.bytesInFlight += provisional;
    counts.outcome('started');
    this.schedule(() => {
      void this.run(target.title, target.file, target.range, cap, provisional, ask.traceparent)
        .catch((err: Error) => {
          // Upstream failed to say what the object is (the cache logged the fetch already).
          counts.outcome('failed');
          logger.debug({ title: target.title, file: target.file, err: err.message }, 'prefetch failed');
        })
        .finally(() => this.active.delete(id));
    });
  }

  /**
   * One prefetch, from its object's representation to its last slice, bringing at most `cap`
   * bytes. Ends with exactly one outcome (besides the `started` counted when it was admitted).
   * Its bytes stay reserved while they may still arrive: the slice `resolve` started to learn the
   * object runs whatever the budget then says, so it is held until it settles, and so is this
   * prefetch's slot. Every reserved byte is given back on the way out.
   */
  private async run(title: string, file: string, nextRange: NextRange | undefined, cap: number, provisional: number, traceparent: string | undefined): Promise<void> {
    const { cache, counts, logger } = this.opts;
    let reserved = provisional;
    /** Holds `n` bytes of the budget from now on (instead of what it held). */
    const hold = (n: number) => {
      this.bytesInFlight += n - reserved;
      reserved = n;
    };
    const end = (o: PrefetchOutcome, detail?: Record<string, unknown>) => {
      counts.outcome(o);
      if (detail && logger.isLevelEnabled('debug')) logger.debug({ title, file, outcome: o, ...detail }, 'prefetch ended');
    };
    /** The slice fetch `resolve` started for this prefetch (not one it joined), until it was read. */
    let mine: PrimedFetch | undefined;
    try {
      if (this.opts.busy()) return end('skipped_overload');
      // The object's representation: known, or learnt from the first slice wanted, as a miss learns it.
      let meta = cache.peek(title, file);
      let primed: PrimedFetch | undefined;
      if (!meta) {
        const found = await cache.resolve(title, file, nextRange?.firstByte, traceparent, 'prefetch');
        if (found.kind === 'not-found') return end('failed', { reason: 'not found' });
        meta = found.meta;
        primed = found.primed;
        if (primed && !primed.joined) {
          mine = primed;
          hold(sliceLength(meta, primed.index, cache.sliceBytes));
        }
      }
      // Nothing a prefetch brings of it would be kept (no-store, private): stop after learning so.
      if (!meta.storable) return end('refused', { reason: 'not cacheable' });
      const range = wantedRange(nextRange, meta.size, cap);
      if (!range) return end('refused', { reason: 'range past the end of the object' });

      const todo = this.slicesToBring(meta, range, primed, cap);
      const wanted = todo.reduce((n, i) => n + sliceLength(meta, i, cache.sliceBytes), 0);
      if (wanted === 0) return end('cached');
      // Whether it fits beside the others' bytes (its own primed slice is part of `wanted`).
      const allowed = reserveBytes(this.opts.settings(), this.bytesInFlight - reserved, wanted);
      if (allowed === 'skipped_budget') {
        end('skipped_budget');
        // The slice it started to learn the object still comes (and is kept): its bytes count.
        const started = mine;
        mine = undefined;
        if (started) counts.bytes(await this.bring(meta, started.index, traceparent, started));
        return;
      }
      hold(Math.max(allowed, reserved));

      let brought = 0;
      let cut = false;
      for (const index of todo) {
        const length = sliceLength(meta, index, cache.sliceBytes);
        if (length > reserved) {
          cut = true; // cut to the budget (one object larger than it)
          break;
        }
        const isMine = mine?.index === index;
        if (!isMine && this.opts.busy()) return end(brought > 0 ? 'done' : 'skipped_overload');
        const r = await cache.prefetchSlice(meta, index, traceparent, primed);
        if (isMine) mine = undefined;
        hold(reserved - length);
        if (r.kind === 'failed') return end('failed', { index, reason: r.reason });
        if (r.kind === 'fetched') {
          brought += r.bytes;
          counts.bytes(r.bytes);
        }
      }
      // Cut before it brought anything: the budget stopped it, not a full cache.
      end(brought > 0 ? 'done' : cut ? 'skipped_budget' : 'cached');
    } finally {
      // The slice resolve started is still coming (a refusal or an early stop): its bytes and this
      // prefetch's slot stay taken until it settles — the fetch runs whatever we decided.
      if (mine) await mine.fetch.settled();
      this.bytesInFlight -= reserved;
    }
  }

  /** Waits for a slice fetch this prefetch started; the bytes it brought (0 when it failed or was another's). */
  private async bring(meta: CachedMeta, index: number, traceparent: string | undefined, primed: PrimedFetch): Promise<number> {
    const r = await this.opts.cache.prefetchSlice(meta, index, traceparent, primed);
    return r.kind === 'fetched' ? r.bytes : 0;
  }

  /** Whether every slice a prefetch of this would bring is held by a tier or on its way (synchronous: known objects only). */
  private holdsAll(title: string, file: string, nextRange: NextRange | undefined, cap: number): boolean {
    const { cache } = this.opts;
    const meta = cache.peek(title, file);
    if (meta === undefined) return false;
    const range = wantedRange(nextRange, meta.size, cap);
    if (range === undefined) return false; // run() says why
    const last = Math.floor((range.end - 1) / cache.sliceBytes);
    for (let i = Math.floor(range.start / cache.sliceBytes); i <= last; i++) if (!cache.holdsOrFetches(meta, i)) return false;
    return true;
  }

  /**
   * The slices a prefetch has to bring: first the one it started itself to learn the object (even
   * outside `range`: a suffix range learns the size from slice 0), then those of `range` no tier
   * holds and nobody fetches, while they fit in `cap` bytes (the first one whatever its size).
   */
  private slicesToBring(meta: CachedMeta, range: ByteRange, primed: PrimedFetch | undefined, cap: number): number[] {
    const { sliceBytes } = this.opts.cache;
    const mine = primed && !primed.joined ? primed.index : -1;
    const out = mine >= 0 ? [mine] : [];
    let bytes = mine >= 0 ? sliceLength(meta, mine, sliceBytes) : 0;
    for (const i of slicesFor(range, sliceBytes)) {
      if (i === mine || i === primed?.index || this.opts.cache.holdsOrFetches(meta, i)) continue;
      const length = sliceLength(meta, i, sliceBytes);
      if (out.length > 0 && bytes + length > cap) break;
      out.push(i);
      bytes += length;
    }
    return out;
  }
}

/**
 * The bytes a prefetch looks at: what `nor`/`nrr` name, cut to the first `cap` of it (the most
 * this prefetch brings: prefetchCap), so deciding costs a bounded number of lookups whatever the object's size.
 */
function wantedRange(nextRange: NextRange | undefined, size: number, cap: number): ByteRange | undefined {
  const r = prefetchRange(nextRange, size);
  return r && { start: r.start, end: Math.min(r.end, r.start + cap) };
}

function sliceLength(meta: CachedMeta, index: number, sliceBytes: number): number {
  const b = sliceBounds(index, sliceBytes, meta.size);
  return b.end - b.start;
}
