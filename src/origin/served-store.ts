import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../common/atomic-file.js';
import type { Clock, TimerHandle } from '../common/clock.js';
import type { Logger } from '../common/logger.js';
import { OriginInputError } from './errors.js';
import { type FileWeights, type ServeReport, type ServedDay, addReport, fileWeights } from './file-weights.js';
import { DAY_RE, utcDay } from './plays.js';

export interface ServedStoreOptions {
  /** The JSON file, normally dataDir/served.json. */
  file: string;
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

/** Reports remembered per (edge, instance) for replay checks, at most: oldest out. */
const PREVIOUS_KEPT = 4096;

/**
 * What edges served, summed per UTC day per title per file (file-weights.ts), in memory and in
 * one JSON file (atomic, debounced) so the weights survive restarts — as PlayStore keeps plays.
 * The slice unit is fixed when the file is created: sums of different units cannot be added.
 */
export class ServedStore {
  private readonly days = new Map<string, ServedDay>();
  private readonly previous = new Map<string, { seq: number; to: number }>();
  private sliceUnit: number;
  private timer: TimerHandle | undefined;
  private dirty = false;
  private writing: Promise<void> | undefined;
  private closed = false;
  /** Goes up with every accepted report: weights computed before are stale. */
  private changes = 0;
  private cached?: { key: string; weights: FileWeights };
  private cachedFor: unknown;

  private constructor(private readonly opts: ServedStoreOptions) {
    this.sliceUnit = opts.sliceBytes;
  }

  static async open(opts: ServedStoreOptions): Promise<ServedStore> {
    const store = new ServedStore(opts);
    let text: string | undefined;
    try {
      text = await readFile(opts.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text !== undefined) store.load(text);
    return store;
  }

  get sliceBytes(): number {
    return this.sliceUnit;
  }

  private load(text: string): void {
    const fail = (problem: string): never => {
      throw new OriginInputError(`${this.opts.file}: ${problem}`);
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
      this.days.set(day, served);
    }
    this.sliceUnit = doc.sliceBytes!;
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
    const now = this.opts.clock.now();
    const today = utcDay(now);
    let day = this.days.get(today);
    if (!day) this.days.set(today, (day = {}));
    addReport(day, r, this.sliceUnit, fileSize);
    const oldest = utcDay(now - (this.opts.retainDays ?? 14) * 86_400_000);
    for (const d of this.days.keys()) if (d < oldest) this.days.delete(d);
    this.changes++;
    this.dirty = true;
    if (this.timer === undefined && !this.closed) {
      this.timer = this.opts.clock.setTimeout(() => {
        this.timer = undefined;
        this.flush().catch((err: unknown) => this.opts.logger?.error({ err }, 'could not save served counts'));
      }, this.opts.debounceMs ?? 5000);
    }
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
    const weights = fileWeights(this.days, today, { halfLifeDays, sliceBytes: this.sliceUnit, fileSize, plays: opts.plays });
    this.cached = { key, weights };
    this.cachedFor = stamp;
    return weights;
  }

  /** Days with sums, oldest first. */
  daysWithData(): string[] {
    return [...this.days.keys()].sort();
  }

  /** A day's sums (a deep copy). */
  dayOf(day: string): ServedDay {
    return structuredClone(this.days.get(day) ?? {});
  }

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
      const doc: ServedDocument = { version: 1, sliceBytes: this.sliceUnit, days: Object.fromEntries([...this.days].sort(([a], [b]) => (a < b ? -1 : 1))) };
      const w = writeFileAtomic(this.opts.file, JSON.stringify(doc) + '\n');
      this.writing = w;
      try {
        await w;
      } catch (err) {
        this.dirty = true;
        throw err;
      } finally {
        this.writing = undefined;
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }
}
