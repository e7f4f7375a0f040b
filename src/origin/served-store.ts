import { basename, dirname } from 'node:path';
import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/logger.js';
import { OriginInputError } from './errors.js';
import { type FileWeights, type ServeReport, type ServedDay, addReport, fileWeights } from './file-weights.js';
import { DAY_RE, utcDay } from './plays.js';
import { DirStorage } from './storage/dir-storage.js';
import { DocumentWrites } from './storage/document-writes.js';
import type { OriginStorage } from './storage/storage.js';

export interface ServedStoreOptions {
  /** A JSON file (a folder's served.json). Or `storage` and `key`. */
  file?: string;
  /** The storage holding the sums (origin.storage), with `key` (default `served.json`). */
  storage?: OriginStorage;
  key?: string;
  clock: Clock;
  /** Slice unit of the sums when the file does not exist yet (the cluster's smallest edge sliceBytes). */
  sliceBytes: number;
  /** Writes are batched: at most one per this many ms while reports arrive. Default 5000. */
  debounceMs?: number;
  /** Days older than this are forgotten (at a 2-day half-life a 14-day-old day weighs 1/128). Default 14. */
  retainDays?: number;
  logger?: Logger;
}

interface ServedDocument {
  version: 1;
  sliceBytes: number;
  days: Record<string, ServedDay>;
}

/** What the fill planner is given of the serve sums (ServedStore.planInput, sumsOfPlanInput). */
export interface ServedPlanInput {
  /** The unit of the stored document's slices and of the planner's weights. */
  sliceBytes: number;
  /** The stored document: its tag (null: none) and text (absent when there is none, or the receiver has it). */
  stored: { tag: string | null; text?: string };
  /** Sums not in the stored document yet, each batch in its slice unit. */
  unsaved: { unit: number; days: [string, ServedDay][] }[];
}

/**
 * The days' sums a ServedPlanInput stands for: the stored document's days (`parsed`: the
 * caller's parse of its text, kept per tag) with the unsaved sums added into copies of the days
 * they touch. Pure.
 */
export function sumsOfPlanInput(input: ServedPlanInput, parsed: ReadonlyMap<string, ServedDay>): Map<string, ServedDay> {
  const all = new Map(parsed);
  const copied = new Set<string>();
  for (const batch of input.unsaved) {
    for (const [day, sums] of batch.days) {
      let into = all.get(day);
      if (!copied.has(day)) {
        into = into ? structuredClone(into) : {};
        copied.add(day);
      }
      mergeDay(into!, sums, batch.unit, input.sliceBytes);
      all.set(day, into!);
    }
  }
  return all;
}

/** The days of a served.json text (the store verified the same bytes). */
export function daysOfServedText(text: string): Map<string, ServedDay> {
  const doc = JSON.parse(text) as Partial<ServedDocument>;
  return new Map(Object.entries(doc.days ?? {}));
}

/** Reports remembered per (edge, instance) for replay checks, at most: oldest out. */
const PREVIOUS_KEPT = 4096;

/** Saves that lost to another writer, merged and tried again, before a flush gives up (and keeps its sums). */
const SAVE_TRIES = 8;

/**
 * What edges served, summed per UTC day per title per file (file-weights.ts), in memory and in
 * one JSON document (whole, debounced) so the weights survive restarts — as PlayStore keeps plays.
 * The slice unit is fixed when the document is created: sums of different units cannot be added
 * (sums taken in another unit are moved into the document's, as reports of another unit are).
 *
 * Several origin replicas may share the document (origin.storage on S3), each taking some of the
 * edges' reports. As PlayStore does, a replica keeps the document as last read (`stored`) apart
 * from the sums it took since (`pending`) and saves stored + pending only over the document it
 * read; when another replica saved first it reads theirs, adds its pending sums and tries again,
 * so no report is lost or counted twice. `refresh()` takes in the others' saves between its own.
 */
export class ServedStore {
  private readonly storage: OriginStorage;
  private readonly key: string;
  /** The document as last read or written; `storedTag` names those bytes (null: no document). */
  private stored = new Map<string, ServedDay>();
  private storedTag: string | null = null;
  /** Sums of the reports taken since the last save, in `sliceUnit`: not in `stored` yet. */
  private pending = new Map<string, ServedDay>();
  /** Sums being saved (in their unit): still counted while the write is under way. */
  private sending: { days: Map<string, ServedDay>; unit: number } | undefined;
  /** stored + sending + pending, built when asked for after a change. */
  private view: Map<string, ServedDay> | undefined;
  private readonly previous = new Map<string, { seq: number; to: number }>();
  private sliceUnit: number;
  /** Saves and refreshes, one at a time: each starts from the tag the previous one left. */
  private readonly writes: DocumentWrites;
  /** Goes up with every accepted report and every document read: weights computed before are stale. */
  private changes = 0;
  private counted = 0;
  /** The text of the stored document (what `stored` was parsed from or written as): the planner's thread parses its own copy. */
  private storedText: string | undefined;
  private cached?: { key: string; weights: FileWeights };
  private cachedFor: unknown;

  private constructor(private readonly opts: ServedStoreOptions) {
    this.sliceUnit = opts.sliceBytes;
    if (opts.storage) {
      this.storage = opts.storage;
      this.key = opts.key ?? 'served.json';
    } else {
      if (opts.file === undefined) throw new Error('ServedStore: give `file` or `storage`');
      this.storage = new DirStorage(dirname(opts.file));
      this.key = basename(opts.file);
    }
    this.writes = new DocumentWrites({
      clock: opts.clock,
      debounceMs: opts.debounceMs ?? 5000,
      save: () => this.save(),
      reload: () => this.reload(),
      storedTag: () => this.storedTag,
      currentTag: async () => (await this.storage.stat(this.key))?.tag ?? null,
      saveFailed: (err) => opts.logger?.error({ err }, 'could not save served counts'),
    });
  }

  /** Opens the store, loading the document if it exists; one that does not verify is an error. */
  static async open(opts: ServedStoreOptions): Promise<ServedStore> {
    const store = new ServedStore(opts);
    await store.reload();
    return store;
  }

  get sliceBytes(): number {
    return this.sliceUnit;
  }

  private async reload(): Promise<void> {
    const before = bytesOf(this.stored);
    const doc = await this.storage.readDocument(this.key);
    if (doc === undefined) {
      this.stored = new Map();
      this.storedTag = null;
      this.storedText = undefined;
    } else {
      const { days, sliceBytes } = this.parse(doc.text);
      if (sliceBytes !== this.sliceUnit && this.pending.size > 0) this.pending = inUnit(this.pending, this.sliceUnit, sliceBytes);
      this.stored = days;
      this.storedTag = doc.tag;
      this.storedText = doc.text;
      this.sliceUnit = sliceBytes;
    }
    // Another replica's reports are new reports to the planner as well.
    this.counted += Math.abs(bytesOf(this.stored) - before);
    this.changed();
  }

  private changed(): void {
    this.changes++;
    this.view = undefined;
  }

  /** stored + sending + pending (not copies: callers copy what they hand out). */
  private days(): Map<string, ServedDay> {
    if (this.view) return this.view;
    if (this.pending.size === 0 && !this.sending) return (this.view = this.stored);
    // Days nothing was added to are the stored ones themselves (a view is only read); only days
    // with reports not saved yet — today's, mostly — are copied and merged: copying every day
    // at every report cost seconds of the event loop at production sizes.
    const all = new Map<string, ServedDay>(this.stored);
    const copied = new Set<string>();
    const add = (days: Map<string, ServedDay>, unit: number) => {
      for (const [day, served] of days) {
        let into = all.get(day);
        if (!copied.has(day)) {
          into = into ? structuredClone(into) : {};
          copied.add(day);
        }
        mergeDay(into!, served, unit, this.sliceUnit);
        all.set(day, into!);
      }
    };
    if (this.sending) add(this.sending.days, this.sending.unit);
    add(this.pending, this.sliceUnit);
    return (this.view = all);
  }

  private parse(text: string): { days: Map<string, ServedDay>; sliceBytes: number } {
    const fail = (problem: string): never => {
      throw new OriginInputError(`${this.storage.describe(this.key)}: ${problem}`);
    };
    let doc: Partial<ServedDocument>;
    try {
      doc = JSON.parse(text) as Partial<ServedDocument>;
    } catch (err) {
      return fail(`not valid JSON: ${(err as Error).message}`);
    }
    if (typeof doc !== 'object' || doc === null || doc.version !== 1 || typeof doc.days !== 'object' || doc.days === null) {
      fail('must be { "version": 1, "sliceBytes": N, "days": {...} }');
    }
    if (typeof doc.sliceBytes !== 'number' || !Number.isSafeInteger(doc.sliceBytes) || doc.sliceBytes < 4096) fail('sliceBytes: must be a slice size');
    const n = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
    const days = new Map<string, ServedDay>();
    for (const [day, served] of Object.entries(doc.days!)) {
      if (!DAY_RE.test(day)) fail(`days.${day}: not a YYYY-MM-DD day`);
      if (typeof served !== 'object' || served === null) fail(`days.${day}: must be an object`);
      for (const [title, td] of Object.entries(served)) {
        if (typeof td !== 'object' || td === null || !n(td.plays) || typeof td.files !== 'object' || td.files === null) fail(`days.${day}.${title}: must be { plays, files }`);
        for (const [file, fd] of Object.entries(td.files)) {
          if (typeof fd !== 'object' || fd === null || !n(fd.requests) || !n(fd.bytes)) fail(`days.${day}.${title}.files.${file}: must be { requests, bytes }`);
          if (fd.slices !== undefined && (!Array.isArray(fd.slices) || !fd.slices.every(n))) fail(`days.${day}.${title}.files.${file}.slices: must be counts`);
        }
      }
      days.set(day, served);
    }
    return { days, sliceBytes: doc.sliceBytes! };
  }

  private oldestKept(): string {
    return utcDay(this.opts.clock.now() - (this.opts.retainDays ?? 14) * 86_400_000);
  }

  /** The last report accepted from this edge process (replay and overlap checks). */
  previousOf(edgeId: string, instance: string): { seq: number; to: number } | undefined {
    return this.previous.get(JSON.stringify([edgeId, instance]));
  }

  /** Adds an accepted report to today's sums (origin clock); the file is written within `debounceMs`. */
  record(r: ServeReport, fileSize: (title: string, file: string) => number | undefined): void {
    const id = JSON.stringify([r.edgeId, r.instance]);
    this.previous.delete(id);
    if (this.previous.size >= PREVIOUS_KEPT) this.previous.delete(this.previous.keys().next().value!);
    this.previous.set(id, { seq: r.seq, to: r.to });
    const today = utcDay(this.opts.clock.now());
    let day = this.pending.get(today);
    if (!day) this.pending.set(today, (day = {}));
    addReport(day, r, this.sliceUnit, fileSize);
    for (const t of r.titles) for (const f of t.files) this.counted += f.bytes;
    const oldest = this.oldestKept();
    // The next save drops old days from the document too.
    for (const days of [this.pending, this.stored]) for (const d of days.keys()) if (d < oldest) days.delete(d);
    this.changed();
    this.writes.changed();
  }

  /**
   * Weights for planning on `today` (fileWeights), recomputed only when a report arrived, the
   * day turned, or the catalog or half-life changed since the last call.
   */
  weights(
    today: string,
    halfLifeDays: number,
    fileSize: (title: string, file: string) => number | undefined,
    opts: { catalogStamp?: unknown; plays?: (day: string, title: string) => number | undefined; playsStamp?: unknown } = {},
  ): FileWeights {
    const key = `${this.changes}|${today}|${halfLifeDays}|${String(opts.playsStamp)}`;
    const stamp = opts.catalogStamp ?? fileSize;
    if (this.cached && this.cached.key === key && this.cachedFor === stamp) return this.cached.weights;
    const weights = fileWeights(this.days(), today, { halfLifeDays, sliceBytes: this.sliceUnit, fileSize, plays: opts.plays });
    this.cached = { key, weights };
    this.cachedFor = stamp;
    return weights;
  }

  /**
   * The sums as the fill planner's thread takes them: the stored document as text, named by its
   * tag (the thread parses it once per tag: handing it millions of parsed numbers would cost the
   * event loop seconds), and the sums not in it yet (the reports since the last save) as they are.
   */
  planInput(): ServedPlanInput {
    const unsaved: ServedPlanInput['unsaved'] = [];
    if (this.sending) unsaved.push({ unit: this.sending.unit, days: [...this.sending.days] });
    if (this.pending.size > 0) unsaved.push({ unit: this.sliceUnit, days: [...this.pending] });
    return { sliceBytes: this.sliceUnit, stored: { tag: this.storedTag, ...(this.storedText !== undefined ? { text: this.storedText } : {}) }, unsaved };
  }

  /** Bytes of reports counted since the store opened, this replica's and other replicas' saves taken in (the replan decision's counter). */
  bytesCounted(): number {
    return this.counted;
  }

  /** Days with sums, oldest first. */
  daysWithData(): string[] {
    return [...this.days().keys()].sort();
  }

  /** A day's sums (a deep copy). */
  dayOf(day: string): ServedDay {
    return structuredClone(this.days().get(day) ?? {});
  }

  /** Writes the pending sums now (and waits for a write already under way). */
  flush(): Promise<void> {
    return this.writes.flush();
  }

  /**
   * Takes in what other replicas saved since this one last read or wrote the document (a stat,
   * or a HEAD, when nothing changed). A document that no longer verifies keeps the sums held.
   */
  refresh(): Promise<void> {
    return this.writes.refresh();
  }

  private async save(): Promise<void> {
    for (let attempt = 0; this.pending.size > 0; attempt++) {
      if (attempt >= SAVE_TRIES) throw new Error(`${this.storage.describe(this.key)}: other writers kept saving first; the sums stay for the next save`);
      // Reports that arrive during the write go to a fresh `pending`, not into this document.
      const sending = this.pending;
      const unit = this.sliceUnit;
      this.pending = new Map();
      this.sending = { days: sending, unit };
      // Stored days are never written in place: only the days reports went to are copied.
      const next = new Map<string, ServedDay>(this.stored);
      for (const [day, served] of sending) {
        const had = next.get(day);
        const into = had ? structuredClone(had) : {};
        mergeDay(into, served, unit, unit);
        next.set(day, into);
      }
      const oldest = this.oldestKept();
      for (const d of next.keys()) if (d < oldest) next.delete(d);
      const doc: ServedDocument = { version: 1, sliceBytes: unit, days: Object.fromEntries([...next].sort(([a], [b]) => (a < b ? -1 : 1))) };
      const text = JSON.stringify(doc) + '\n';
      let r;
      try {
        r = await this.storage.writeDocument(this.key, text, this.storedTag);
      } catch (err) {
        this.unsend(sending, unit); // keep the sums for the next attempt
        throw err;
      }
      if (r.ok) {
        this.sending = undefined;
        this.stored = next;
        this.storedTag = r.tag;
        this.storedText = text;
        this.changed();
        continue;
      }
      // Another writer saved first: start from theirs.
      this.unsend(sending, unit);
      await this.reload();
    }
  }

  /** Puts sums that were not saved back into `pending` (in the store's unit now). */
  private unsend(sending: Map<string, ServedDay>, unit: number): void {
    this.sending = undefined;
    for (const [day, served] of sending) {
      const into = this.pending.get(day) ?? {};
      mergeDay(into, served, unit, this.sliceUnit);
      this.pending.set(day, into);
    }
    this.changed();
  }

  close(): Promise<void> {
    return this.writes.close();
  }
}

/** Adds a day's sums (slices in `fromUnit`) into another's (in `toUnit`), in place: as a report of them would. */
export function mergeDay(into: ServedDay, add: ServedDay, fromUnit: number, toUnit: number): void {
  const titles = Object.entries(add).map(([title, td]) => ({
    title,
    plays: td.plays,
    files: Object.entries(td.files).map(([file, fd]) => ({ file, ...fd })),
  }));
  addReport(into, { edgeId: '', instance: '', seq: 0, from: 0, to: 0, sliceBytes: fromUnit, titles }, toUnit, () => 0);
}

/** Sums moved into another slice unit. */
function inUnit(days: Map<string, ServedDay>, fromUnit: number, toUnit: number): Map<string, ServedDay> {
  const out = new Map<string, ServedDay>();
  for (const [day, served] of days) {
    const into: ServedDay = {};
    mergeDay(into, served, fromUnit, toUnit);
    out.set(day, into);
  }
  return out;
}

function bytesOf(days: ReadonlyMap<string, ServedDay>): number {
  let n = 0;
  for (const day of days.values()) for (const td of Object.values(day)) for (const fd of Object.values(td.files)) n += fd.bytes;
  return n;
}
