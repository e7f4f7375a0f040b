import type { Clock, TimerHandle } from './clock.js';

/**
 * A round of work repeated on the injected clock. The next round is scheduled only once the
 * previous one has settled, so a slow round delays the schedule instead of piling rounds up;
 * and a round asked for while one is in flight joins it.
 */
export class Periodic {
  private timer: TimerHandle | undefined;
  private running = false;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly round: () => Promise<unknown>,
  ) {}

  /** Runs a round now, or returns the one in flight. */
  runNow(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    this.inFlight = this.round().then(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  /** Starts the rounds, the first one immediately; a second call does nothing. */
  start(): void {
    if (this.running) return;
    this.running = true;
    const tick = () => {
      if (!this.running) return;
      void this.runNow().finally(() => {
        if (this.running) this.timer = this.clock.setTimeout(tick, this.intervalMs);
      });
    };
    tick();
  }

  /** Stops scheduling and resolves once the round in flight (if any) has finished. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }
}
