import type { Clock, TimerHandle } from '../../common/clock.js';

export interface DocumentWritesOptions {
  clock: Clock;
  /** A burst of changes is saved once, this long after its first. */
  debounceMs: number;
  /** Writes what is pending (a conditional write, retried against other writers). */
  save(): Promise<void>;
  /** Reads the stored document again (another replica wrote it). */
  reload(): Promise<void>;
  /** The tag of the document as this process last read or wrote it (null: none). */
  storedTag(): string | null;
  /** The stored document's tag now, without reading it (a stat, or a HEAD). */
  currentTag(): Promise<string | null>;
  /** A debounced save failed: its changes stay pending for the next one. */
  saveFailed(err: unknown): void;
}

/**
 * When a document the origin keeps in its storage (plays, serve sums) is written or read again:
 * one job at a time, in order, so a save never interleaves with a reload; changes saved once per
 * burst; nothing scheduled once closed. The stores keep what the document holds; this keeps when.
 */
export class DocumentWrites {
  private timer: TimerHandle | undefined;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: DocumentWritesOptions) {}

  /** Something changed: saved within `debounceMs` (unless closed). */
  changed(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = this.opts.clock.setTimeout(() => {
      this.timer = undefined;
      this.flush().catch((err: unknown) => this.opts.saveFailed(err));
    }, this.opts.debounceMs);
  }

  /** Saves the pending changes now (and waits for a write already under way). */
  async flush(): Promise<void> {
    if (this.timer !== undefined) {
      this.opts.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
    await this.serial(() => this.opts.save());
  }

  /** Takes in what other writers saved since this process last read or wrote (a stat when nothing changed). */
  async refresh(): Promise<void> {
    await this.serial(async () => {
      if ((await this.opts.currentTag()) === this.opts.storedTag()) return;
      await this.opts.reload();
    });
  }

  /** Saves what is pending and schedules nothing more. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private serial(job: () => Promise<void>): Promise<void> {
    const run = this.chain.then(job, job);
    this.chain = run.catch(() => {});
    return run;
  }
}
