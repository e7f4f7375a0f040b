import { basename, dirname } from 'node:path';
import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/logger.js';
import { OriginInputError } from './errors.js';
import { type DayCounts, type Play, DAY_RE, addPlays, copyCounts, pruneDays, utcDay } from './plays.js';
import { DirStorage } from './storage/dir-storage.js';
import { DocumentWrites } from './storage/document-writes.js';
import type { OriginStorage } from './storage/storage.js';

export interface PlayStoreOptions {
  /** The JSON file, normally dataDir/plays.json. Or `storage` and `key`. */
  file?: string;
  /** The storage holding the counts (origin.storage), with `key` (default `plays.json`). */
  storage?: OriginStorage;
  key?: string;
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

/** Saves that lost to another writer, merged and tried again, before a flush gives up (and keeps its counts). */
const SAVE_TRIES = 8;

/**
 * Play counts per UTC day per ISP per title, kept in memory and persisted to one JSON document
 * (whole, debounced) so they survive restarts. The read side is plain values (`countsFor(day)`,
 * `days()`), which is what a popularity model wants.
 *
 * Several origin replicas may share the document (origin.storage on S3), each taking some of
 * steering's plays. So a replica never writes what it believes the totals are: it keeps the
 * document as last read (`stored`) apart from the plays it took since (`pending`), and saves
 * stored + pending only over the document it read (a conditional write). When another replica
 * saved first, it reads theirs, adds its pending plays to it and tries again: no play is lost or
 * counted twice. `refresh()` picks up the others' plays between saves.
 */
export class PlayStore {
  private readonly storage: OriginStorage;
  private readonly key: string;
  /** The document as last read or written; `storedTag` names those bytes (null: no document). */
  private stored = new Map<string, DayCounts>();
  private storedTag: string | null = null;
  /** Plays taken since the last save: not in `stored` yet. */
  private pending = new Map<string, DayCounts>();
  /** Plays being saved: still counted while the write is under way (a plan made then sees them). */
  private sending: Map<string, DayCounts> | undefined;
  private readonly debounceMs: number;
  private readonly retainDays: number;
  /** Saves and refreshes, one at a time: each starts from the tag the previous one left. */
  private readonly writes: DocumentWrites;
  private counted = 0;

  private constructor(private readonly opts: PlayStoreOptions) {
    if (opts.storage) {
      this.storage = opts.storage;
      this.key = opts.key ?? 'plays.json';
    } else {
      if (opts.file === undefined) throw new Error('PlayStore: give `file` or `storage`');
      this.storage = new DirStorage(dirname(opts.file));
      this.key = basename(opts.file);
    }
    this.debounceMs = opts.debounceMs ?? 1000;
    this.retainDays = opts.retainDays ?? 120;
    this.writes = new DocumentWrites({
      clock: opts.clock,
      debounceMs: this.debounceMs,
      save: () => this.save(),
      reload: () => this.reload(),
      storedTag: () => this.storedTag,
      currentTag: async () => (await this.storage.stat(this.key))?.tag ?? null,
      saveFailed: (err) => opts.logger?.error({ err }, 'could not save play counts'),
    });
  }

  /** Opens the store, loading the document if it exists; one that does not verify is an error. */
  static async open(opts: PlayStoreOptions): Promise<PlayStore> {
    const store = new PlayStore(opts);
    await store.reload();
    return store;
  }

  private async reload(): Promise<void> {
    const doc = await this.storage.readDocument(this.key);
    const before = totalOf(this.stored);
    this.stored = doc === undefined ? new Map() : this.parse(doc.text);
    this.storedTag = doc === undefined ? null : doc.tag;
    // Another replica's plays are new plays to the planner as well.
    this.counted += Math.abs(totalOf(this.stored) - before);
  }

  /**
   * Plays counted since the store opened, this replica's and the ones other replicas' saves
   * brought in: a counter that says how much the counts moved (the fill plans' replan decision).
   */
  playsCounted(): number {
    return this.counted;
  }

  private parse(text: string): Map<string, DayCounts> {
    const fail = (problem: string): never => {
      throw new OriginInputError(`${this.storage.describe(this.key)}: ${problem}`);
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
    const days = new Map<string, DayCounts>();
    for (const [day, counts] of Object.entries(doc.days!)) {
      if (!DAY_RE.test(day)) fail(`days.${day}: not a YYYY-MM-DD day`);
      if (typeof counts !== 'object' || counts === null) fail(`days.${day}: must be an object`);
      for (const [isp, titles] of Object.entries(counts)) {
        if (typeof titles !== 'object' || titles === null) fail(`days.${day}.${isp}: must be an object`);
        for (const [title, n] of Object.entries(titles)) {
          if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) fail(`days.${day}.${isp}.${title}: must be a count`);
        }
      }
      days.set(day, copyCounts(counts));
    }
    return days;
  }

  private oldestKept(): string {
    return utcDay(this.opts.clock.now() - this.retainDays * 86_400_000);
  }

  /** Counts plays; the document is written within `debounceMs`. */
  record(plays: readonly Play[]): void {
    if (plays.length === 0) return;
    this.counted += plays.length;
    addPlays(this.pending, plays);
    pruneDays(this.pending, this.oldestKept());
    pruneDays(this.stored, this.oldestKept()); // the next save drops them from the document too
    this.writes.changed();
  }

  /** isp → title → plays on a UTC day (`YYYY-MM-DD`); empty if none. A copy. */
  countsFor(day: string): DayCounts {
    const out = copyCounts(this.stored.get(day));
    mergeInto(out, this.sending?.get(day));
    mergeInto(out, this.pending.get(day));
    return out;
  }

  /** Days that have counts, oldest first. */
  daysWithPlays(): string[] {
    return [...new Set([...this.stored.keys(), ...(this.sending?.keys() ?? []), ...this.pending.keys()])].sort();
  }

  /** Writes pending counts now (and waits for a write already under way). */
  flush(): Promise<void> {
    return this.writes.flush();
  }

  /**
   * Takes in what other replicas saved since this one last read or wrote the document (a stat,
   * or a HEAD, when nothing changed). A document that no longer verifies keeps the counts held.
   */
  refresh(): Promise<void> {
    return this.writes.refresh();
  }

  private async save(): Promise<void> {
    for (let attempt = 0; this.pending.size > 0; attempt++) {
      if (attempt >= SAVE_TRIES) throw new Error(`${this.storage.describe(this.key)}: other writers kept saving first; the counts stay for the next save`);
      // Plays that arrive during the write go to a fresh `pending`, not into this document.
      const sending = this.pending;
      this.pending = new Map();
      this.sending = sending;
      const next = new Map<string, DayCounts>();
      for (const [day, counts] of this.stored) next.set(day, copyCounts(counts));
      for (const [day, counts] of sending) {
        const into = next.get(day) ?? {};
        mergeInto(into, counts);
        next.set(day, into);
      }
      pruneDays(next, this.oldestKept());
      const doc: PlaysDocument = { version: 1, days: Object.fromEntries([...next].sort(([a], [b]) => (a < b ? -1 : 1))) };
      let r;
      try {
        r = await this.storage.writeDocument(this.key, JSON.stringify(doc) + '\n', this.storedTag);
      } catch (err) {
        this.unsend(sending); // keep the counts for the next attempt
        throw err;
      }
      if (r.ok) {
        this.sending = undefined;
        this.stored = next;
        this.storedTag = r.tag;
        continue;
      }
      // Another writer saved first: start from theirs.
      this.unsend(sending);
      await this.reload();
    }
  }

  private unsend(sending: Map<string, DayCounts>): void {
    this.sending = undefined;
    for (const [day, counts] of sending) {
      const into = this.pending.get(day) ?? {};
      mergeInto(into, counts);
      this.pending.set(day, into);
    }
  }

  /** Final flush; later plays are still counted in memory but not scheduled for writing. */
  close(): Promise<void> {
    return this.writes.close();
  }
}

function totalOf(days: ReadonlyMap<string, DayCounts>): number {
  let n = 0;
  for (const counts of days.values()) for (const titles of Object.values(counts)) for (const c of Object.values(titles)) n += c;
  return n;
}

/** Adds `add`'s counts into `into`, in place. */
function mergeInto(into: DayCounts, add: DayCounts | undefined): void {
  if (!add) return;
  for (const [isp, titles] of Object.entries(add)) {
    const t = (into[isp] ??= {});
    for (const [title, n] of Object.entries(titles)) t[title] = (t[title] ?? 0) + n;
  }
}
