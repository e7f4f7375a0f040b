/**
 * A map whose entries live `ttlMs` from when they were set, holding at most `maxEntries`
 * (the oldest go first). Every entry has the same lifetime, so insertion order is expiry
 * order: a `Map` in insertion order is the whole index, and expiry and eviction both pop
 * from its front. Time comes in as a parameter (monotonic ms). Pure.
 */
export class ExpiringMap<K, V> {
  private readonly entries = new Map<K, { value: V; expires: number }>();
  /** Live entries pushed out by `maxEntries` before they expired (memory bound reached). */
  evicted = 0;

  constructor(
    readonly maxEntries: number,
    readonly ttlMs: number,
  ) {
    if (!Number.isSafeInteger(maxEntries) || maxEntries <= 0) throw new RangeError('maxEntries must be a positive integer');
    if (!(ttlMs >= 0)) throw new RangeError('ttlMs must be >= 0');
  }

  /** Entries held, expired ones not yet swept included. */
  get size(): number {
    return this.entries.size;
  }

  get(key: K, now: number): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  has(key: K, now: number): boolean {
    return this.get(key, now) !== undefined;
  }

  /** Sets (or renews) an entry for a full ttl from `now`. */
  set(key: K, value: V, now: number): void {
    this.entries.delete(key);
    this.sweep(now);
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value as K;
      this.entries.delete(oldest);
      this.evicted++;
    }
    this.entries.set(key, { value, expires: now + this.ttlMs });
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }

  /** Drops expired entries (those at the front). */
  sweep(now: number): void {
    for (const [k, e] of this.entries) {
      if (e.expires > now) break;
      this.entries.delete(k);
    }
  }
}
