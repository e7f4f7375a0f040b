import { LRUCache } from 'lru-cache';
import { Counter, type Registry } from 'prom-client';
import { type MpdPlan, type SignedMpd, planMpd, signMpd } from './dash-rewrite.js';

/**
 * Rewritten MPDs, so that a play of a long DASH title costs a string join, not an expansion.
 *
 * Two levels, both lru-cache bounded together in bytes, both coalescing concurrent misses (the
 * in-flight fetch sits in the key's own slot):
 * - plans, keyed by (title, file, manifest sha256): parsing, checking and expanding happen once
 *   per manifest version. A re-ingest changes the digest, so a new version is never answered
 *   from an old plan.
 * - signed MPDs, keyed by (title, file, sha256, signing key id, token period start): the tokens
 *   cover path and expiry only, not the client or the host, so one signed MPD is right for every
 *   client of that period; what does depend on the client (its ranked edges) and on the play
 *   (trace, play id) is filled in per play by `renderMpd`, never cached.
 * Signing is chunked (`pause` between chunks) so a new period never holds the event loop; while
 * a period's MPD is being signed, the previous period's one is served (its tokens still have
 * nearly all their life).
 */

export interface MpdKey {
  title: string;
  file: string;
  /** sha256 of the manifest, from the catalog. */
  digest: string;
}

export interface MpdCacheOptions {
  /** Bound on what is held (characters of plans and signed MPDs; ASCII, so bytes). */
  maxBytes: number;
  /** Length of a token period (s): every play in it gets the same tokens. */
  periodSec: number;
  /** Awaited every `yieldEvery` signatures (default: setImmediate). */
  pause?: () => Promise<void>;
  yieldEvery?: number;
  registry?: Registry;
}

/** The token period for a token TTL: at most 1% of a token's life, between 1 s and 60 s. */
export function tokenPeriodSec(ttlSeconds: number): number {
  return Math.min(60, Math.max(1, Math.floor(ttlSeconds / 100)));
}

type Outcome = 'hit' | 'stale' | 'miss';
type Entry = MpdPlan | SignedMpd;
interface FetchContext {
  text?: () => Promise<string>;
  sign?: (file: string, sec: number) => string;
}

export class MpdCache {
  private readonly cache: LRUCache<string, Entry, FetchContext>;
  private readonly outcomes: Counter<'outcome'> | undefined;
  private periodSec: number;
  /** Counts by outcome, for tests and /health. */
  readonly stats: Record<Outcome, number> = { hit: 0, stale: 0, miss: 0 };

  constructor(private readonly opts: MpdCacheOptions) {
    this.periodSec = opts.periodSec;
    this.cache = new LRUCache<string, Entry, FetchContext>({
      maxSize: opts.maxBytes,
      sizeCalculation: (v) => Math.max(1, v.size),
      fetchMethod: async (key, _stale, { context }) => {
        const [level, title, file, digest, sec] = JSON.parse(key) as [string, string, string, string, number];
        if (level === 'plan') return planMpd(await context.text!(), { title, manifest: file });
        const plan = (await this.cache.fetch(JSON.stringify(['plan', title, file, digest]), { context })) as MpdPlan;
        return signMpd(plan, (f) => context.sign!(f, sec), {
          yieldEvery: this.opts.yieldEvery ?? 1000,
          pause: this.opts.pause ?? (() => new Promise((r) => setImmediate(r))),
        });
      },
    });
    if (opts.registry) {
      this.outcomes = new Counter({
        name: 'reelcdn_steering_mpd_cache_total',
        help: 'DASH plays by how their rewritten MPD was found: hit, stale (previous token period, while the next is signed) or miss.',
        labelNames: ['outcome'],
        registers: [opts.registry],
      });
    }
  }

  /**
   * The signed MPD for a play at `nowSec`. `text` fetches the manifest (only on a plan miss);
   * `sign(file, sec)` is the signed query of a file at a given second.
   */
  async signed(key: MpdKey, keyId: string, nowSec: number, text: () => Promise<string>, sign: (file: string, sec: number) => string): Promise<SignedMpd> {
    const period = this.periodSec;
    const start = Math.floor(nowSec / period) * period;
    const k = (s: number) => JSON.stringify(['signed', key.title, key.file, key.digest, s, keyId]);
    const context: FetchContext = { text, sign };
    const now = this.cache.get(k(start));
    if (now) return this.count('hit', now as SignedMpd);
    const previous = this.cache.get(k(start - period));
    if (previous) {
      void this.cache.fetch(k(start), { context }).catch(() => {});
      return this.count('stale', previous as SignedMpd);
    }
    const fresh = await this.cache.fetch(k(start), { context });
    if (!fresh) throw new Error('MPD cache: fetch gave nothing');
    return this.count('miss', fresh as SignedMpd);
  }

  /** Plays from now on share tokens over periods of this length (signing.ttlSeconds changed on reload). */
  setPeriodSec(periodSec: number): void {
    this.periodSec = periodSec;
  }

  private count(outcome: Outcome, v: SignedMpd): SignedMpd {
    this.stats[outcome]++;
    this.outcomes?.inc({ outcome });
    return v;
  }
}
