import { readFile } from 'node:fs/promises';
import type { Clock, TimerHandle } from '../common/clock.js';
import type { Logger } from '../common/logger.js';
import { writeFileAtomic } from '../common/atomic-file.js';
import { OriginInputError } from './errors.js';
import { type DayCounts, type Play, DAY_RE, addPlays, copyCounts, pruneDays, utcDay } from './plays.js';

export interface PlayStoreOptions {
  /** The JSON file, normally dataDir/plays.json. */
  file: string;
  clock: Clock;
  /** Writes are batched: at most one per this many ms while plays arrive. Default 1000. */
  debounceMs?: number;
  /** Days older than this (before today, UTC) are forgotten. Default 120. */
  retainDays?: number;
  logger?: Logger;
}

interface PlaysDocument {
  version: 1;
  days: Record<string, DayCounts>;
}

/**
 * Play counts per UTC day per ISP per title, kept in memory and persisted to one JSON file
 * (atomically, debounced) so they survive restarts. The read side is plain values
 * (`countsFor(day)`, `days()`), which is what a popularity model wants.
 */
export class PlayStore {
  private readonly days = new Map<string, DayCounts>();
  private readonly debounceMs: number;
  private readonly retainDays: number;
  private timer: TimerHandle | undefined;
  private dirty = false;
  private writing: Promise<void> | undefined;
  private closed = false;

  private constructor(private readonly opts: PlayStoreOptions) {
    this.debounceMs = opts.debounceMs ?? 1000;
    this.retainDays = opts.retainDays ?? 120;
  }

  /** Opens the store, loading the file if it exists; a file that does not verify is an error. */
  static async open(opts: PlayStoreOptions): Promise<PlayStore> {
    const store = new PlayStore(opts);
    let text: string | undefined;
    try {
      text = await readFile(opts.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text !== undefined) store.load(text);
    return store;
  }

  private load(text: string): void {
    const fail = (problem: string): never => {
      throw new OriginInputError(`${this.opts.file}: ${problem}`);
    };
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      fail(`not valid JSON: ${(err as Error).message}`);
    }
    const doc = raw as Partial<PlaysDocument>;
    if (typeof doc !== 'object' || doc === null || doc.version !== 1 || typeof doc.days !== 'object' || doc.days === null) {
      fail('must be { "version": 1, "days": {...} }');
    }
    for (const [day, counts] of Object.entries(doc.days!)) {
      if (!DAY_RE.test(day)) fail(`days.${day}: not a YYYY-MM-DD day`);
      if (typeof counts !== 'object' || counts === null) fail(`days.${day}: must be an object`);
      for (const [isp, titles] of Object.entries(counts)) {
        if (typeof titles !== 'object' || titles === null) fail(`days.${day}.${isp}: must be an object`);
        for (const [title, n] of Object.entries(titles)) {
          if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) fail(`days.${day}.${isp}.${title}: must be a count`);
        }
      }
      this.days.set(day, copyCounts(counts));
    }
  }

  /** Counts plays; the file is written within `debounceMs`. */
  record(plays: readonly Play[]): void {
    if (plays.length === 0) return;
    addPlays(this.days, plays);
    pruneDays(this.days, utcDay(this.opts.clock.now() - this.retainDays * 86_400_000));
    this.dirty = true;
    if (this.timer === undefined && !this.closed) {
      this.timer = this.opts.clock.setTimeout(() => {
        this.timer = undefined;
        this.flush().catch((err: unknown) => this.opts.logger?.error({ err }, 'could not save play counts'));
      }, this.debounceMs);
    }
  }

  /** isp → title → plays on a UTC day (`YYYY-MM-DD`); empty if none. A copy. */
  countsFor(day: string): DayCounts {
    return copyCounts(this.days.get(day));
  }

  /** Days that have counts, oldest first. */
  daysWithPlays(): string[] {
    return [...this.days.keys()].sort();
  }

  /** Writes pending counts now (and waits for a write already under way). */
  async flush(): Promise<void> {
    if (this.timer !== undefined) {
      this.opts.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
    for (;;) {
      if (this.writing) {
        await this.writing.catch(() => {});
        continue;
      }
      if (!this.dirty) return;
      this.dirty = false;
      const doc: PlaysDocument = { version: 1, days: Object.fromEntries([...this.days].sort(([a], [b]) => (a < b ? -1 : 1))) };
      const w = writeFileAtomic(this.opts.file, JSON.stringify(doc) + '\n');
      this.writing = w;
      try {
        await w;
      } catch (err) {
        this.dirty = true; // keep the counts for the next attempt
        throw err;
      } finally {
        this.writing = undefined;
      }
    }
  }

  /** Final flush; later plays are still counted in memory but not scheduled for writing. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }
}
