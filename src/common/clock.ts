/**
 * All time goes through a Clock so that a test can run a night in seconds.
 * Timers fire in clock time.
 */
export interface Clock {
  /** Wall time, ms since the epoch: for timestamps, fill windows, token expiry. May jump either way (NTP, an operator). */
  now(): number;
  /**
   * Ms from an arbitrary start that never goes back: for every interval and rate (uptime,
   * rate limits, "at most once per N ms"). A wall clock stepped back an hour must not stall them.
   */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export interface TimerHandle {
  readonly id: number | NodeJS.Timeout;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { id: t };
  },
  clearTimeout(handle) {
    clearTimeout(handle.id as NodeJS.Timeout);
  },
};

/**
 * A clock that moves only when told to; timers due by then fire in order. Its wall time can
 * also be stepped on its own (`stepWall`), as NTP or an operator would, while monotonic time
 * and timers carry on.
 */
export class FakeClock implements Clock {
  private timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;
  /** Monotonic ms; wall time is this plus `wallOffset`. */
  private t: number;
  private wallOffset = 0;

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t + this.wallOffset;
  }

  monotonic(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return { id };
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle.id as number);
  }

  /** Moves time forward by `ms`, firing each timer at its own due time. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let dueId: number | undefined;
      let dueAt = Infinity;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && timer.at < dueAt) {
          dueAt = timer.at;
          dueId = id;
        }
      }
      if (dueId === undefined) break;
      const timer = this.timers.get(dueId)!;
      this.timers.delete(dueId);
      this.t = Math.max(this.t, timer.at);
      timer.fn();
    }
    this.t = end;
  }

  /** Moves time forward until the wall clock reads `ms` (never back). */
  set(ms: number): void {
    this.advance(Math.max(0, ms - this.now()));
  }

  /** Steps the wall clock by `deltaMs` (negative: back) without moving monotonic time or firing timers. */
  stepWall(deltaMs: number): void {
    this.wallOffset += deltaMs;
  }
}

/**
 * Simulated time for running a night in seconds: whenever a timer is pending, time jumps
 * straight to it (on the next turn of the real event loop), so sleeps cost no real time
 * while real I/O still runs for real.
 */
export class VirtualClock implements Clock {
  private timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;
  private scheduled = false;

  constructor(private t = Date.now()) {}

  now(): number {
    return this.t;
  }

  /** Simulated time only moves forward, so it is its own monotonic clock. */
  monotonic(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    this.schedule();
    return { id };
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle.id as number);
  }

  /** Moves time forward without firing anything early (timers due by then fire in order). */
  advance(ms: number): void {
    this.t += ms;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setTimeout(0), not setImmediate: real I/O callbacks get their turn before time jumps.
    setTimeout(() => {
      this.scheduled = false;
      let dueId: number | undefined;
      let dueAt = Infinity;
      for (const [id, timer] of this.timers) {
        if (timer.at < dueAt) {
          dueAt = timer.at;
          dueId = id;
        }
      }
      if (dueId === undefined) return;
      const timer = this.timers.get(dueId)!;
      this.timers.delete(dueId);
      this.t = Math.max(this.t, timer.at);
      timer.fn();
      if (this.timers.size > 0) this.schedule();
    }, 0).unref?.();
  }
}
