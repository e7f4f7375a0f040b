import type { Clock, TimerHandle } from '../common/clock.js';
import type { Logger } from '../common/logger.js';

/** One play start: the origin counts these per ISP per title to plan fills. */
export interface PlayRecord {
  title: string;
  isp: string;
  /** ms since the epoch (clock time). */
  at: number;
}

/** Sends one batch to the origin (POST /v1/plays); rejects when it was not accepted. */
export type PlaySender = (plays: PlayRecord[]) => Promise<void>;

export interface PlayReporterOptions {
  clock: Clock;
  logger: Logger;
  send: PlaySender;
  /** Flush at least this often (ms). Default 2000. */
  flushMs?: number;
  /** Flush as soon as this many plays wait; also the largest batch. Default 1000 (origin takes ≤ 10000). */
  batchSize?: number;
  /** Plays kept while the origin is away; beyond it new plays are dropped (and counted). Default 100000. */
  maxBuffered?: number;
  /** First retry delay after a failed send (ms), doubling up to maxBackoffMs. Default 1000. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * Batches play starts to the origin. States: idle (timer armed), sending (one batch in
 * flight, never two), backing off (after a failure the buffer is kept and the next try
 * waits minBackoff·2^n, up to maxBackoff). A batch leaves the buffer only once the origin
 * accepted it, so an origin that is down then up loses nothing (unless the buffer filled).
 */
export class PlayReporter {
  private buffer: PlayRecord[] = [];
  private sending: Promise<void> | undefined;
  private timer: TimerHandle | undefined;
  private failures = 0;
  private closed = false;
  /** Plays the origin accepted. */
  sent = 0;
  /** Plays dropped because the buffer was full. */
  dropped = 0;

  constructor(private readonly opts: PlayReporterOptions) {}

  get buffered(): number {
    return this.buffer.length;
  }

  private get batchSize(): number {
    return this.opts.batchSize ?? 1000;
  }

  record(play: PlayRecord): void {
    if (this.buffer.length >= (this.opts.maxBuffered ?? 100_000)) {
      this.dropped++;
      return;
    }
    this.buffer.push(play);
    if (this.buffer.length >= this.batchSize && this.failures === 0 && !this.sending) {
      this.cancelTimer();
      void this.flush();
    } else {
      this.arm(this.opts.flushMs ?? 2000);
    }
  }

  /** Sends what is buffered now, batch by batch, until empty or a send fails. */
  flush(): Promise<void> {
    if (this.sending) return this.sending;
    this.sending = this.drain().finally(() => {
      this.sending = undefined;
      if (this.buffer.length > 0 && !this.closed) this.arm(this.failures > 0 ? this.backoffMs() : (this.opts.flushMs ?? 2000));
    });
    return this.sending;
  }

  private async drain(): Promise<void> {
    while (this.buffer.length > 0) {
      const batch = this.buffer.slice(0, this.batchSize);
      try {
        await this.opts.send(batch);
      } catch (err) {
        this.failures++;
        if (this.failures === 1 || this.failures % 10 === 0) {
          this.opts.logger.warn({ err: (err as Error).message, buffered: this.buffer.length, failures: this.failures }, 'plays not delivered; will retry');
        }
        return;
      }
      this.buffer.splice(0, batch.length);
      this.sent += batch.length;
      this.failures = 0;
    }
  }

  private backoffMs(): number {
    const min = this.opts.minBackoffMs ?? 1000;
    const max = this.opts.maxBackoffMs ?? 30_000;
    return Math.min(max, min * 2 ** Math.min(20, this.failures - 1));
  }

  private arm(ms: number): void {
    if (this.timer || this.closed) return;
    this.timer = this.opts.clock.setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, ms);
  }

  private cancelTimer(): void {
    if (this.timer) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Stops the timer and tries one last flush. */
  async close(): Promise<void> {
    this.closed = true;
    this.cancelTimer();
    await this.sending;
    if (this.buffer.length > 0 && this.failures === 0) await this.flush().catch(() => undefined);
  }
}
