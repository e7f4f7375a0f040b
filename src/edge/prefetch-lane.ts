/**
 * Upstream priority for prefetches (src/edge/prefetch.ts): a prefetch's slice fetch answers no
 * client, so it must never take from a client's miss what the client would have had without it —
 * a connection of the upstream pool, or its place in the pool's queue. Upstream (upstream.ts)
 * counts every request it sends while its response lasts, and a prefetch's request is sent only
 *
 *   - while prefetch requests hold fewer than `slots` connections (a small share of the pool:
 *     client misses always find the rest), and
 *   - while client requests hold fewer than `clientShare` connections (clients busy beyond that
 *     share: the origin's bandwidth is theirs; prefetches wait, in the order they asked).
 *
 * A waiting prefetch request that a client joins (EdgeCache: the client wants that very slice)
 * is promoted: it is sent at once and counted as a client's. One that waits longer than
 * `maxWaitMs` fails (a 504 to nobody: the prefetch stops; it was late anyway). Client requests
 * never wait here.
 */

/** One prefetch request's standing in the lane: `promote` sends it at once, as a client's. */
export class LaneTicket {
  promoted = false;
  /** Set while it waits: called by `promote`. */
  wake: (() => void) | undefined = undefined;

  promote(): void {
    if (this.promoted) return;
    this.promoted = true;
    this.wake?.();
  }
}

/** Why a prefetch request gave up waiting. */
export class LaneTimeout extends Error {
  constructor(waitedMs: number) {
    super(`prefetch waited ${waitedMs} ms for the upstream pool (clients were using it)`);
    this.name = 'LaneTimeout';
  }
}

interface Waiter {
  ticket: LaneTicket;
  go: (release: () => void) => void;
}

export interface LaneSettings {
  /** Connections prefetch requests may hold at once. At least 1. */
  slots: number;
  /** Client requests at which prefetch requests stop being sent. At least 1. */
  clientShare: number;
  /** The longest a prefetch request waits, ms. */
  maxWaitMs: number;
}

/** The lane's settings for an upstream pool of `connections`: a quarter for prefetches, paused once clients hold half. */
export function laneFor(connections: number, maxWaitMs: number): LaneSettings {
  return { slots: Math.max(1, Math.floor(connections / 4)), clientShare: Math.max(1, Math.floor(connections / 2)), maxWaitMs };
}

export class PrefetchLane {
  private clients = 0;
  private prefetches = 0;
  /** Prefetch requests waiting, oldest first. Bounded by the prefetches running (each sends one request at a time). */
  private readonly waiting: Waiter[] = [];

  constructor(private readonly settings: LaneSettings) {}

  /** What holds the pool now (for tests and /health-like views). */
  load(): { clients: number; prefetches: number; waiting: number } {
    return { clients: this.clients, prefetches: this.prefetches, waiting: this.waiting.length };
  }

  /** A client's request goes out now; call the result once its response is over (extra calls do nothing). */
  client(): () => void {
    this.clients++;
    return this.releaser(() => this.clients--);
  }

  /**
   * Resolves when a prefetch's request may go out, with the function to call once its response
   * is over; rejects with LaneTimeout after `maxWaitMs`. Promoted meanwhile: goes out as a client's.
   */
  prefetch(ticket: LaneTicket): Promise<() => void> {
    if (ticket.promoted) return Promise.resolve(this.client());
    if (this.waiting.length === 0 && this.roomForPrefetch()) return Promise.resolve(this.takePrefetch());
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { ticket, go: resolve };
      const timer = setTimeout(() => {
        this.drop(waiter);
        reject(new LaneTimeout(this.settings.maxWaitMs));
      }, this.settings.maxWaitMs);
      timer.unref?.();
      waiter.go = (release) => {
        clearTimeout(timer);
        ticket.wake = undefined;
        resolve(release);
      };
      ticket.wake = () => {
        this.drop(waiter);
        waiter.go(this.client());
      };
      this.waiting.push(waiter);
    });
  }

  private roomForPrefetch(): boolean {
    return this.prefetches < this.settings.slots && this.clients < this.settings.clientShare;
  }

  private takePrefetch(): () => void {
    this.prefetches++;
    return this.releaser(() => this.prefetches--);
  }

  private drop(w: Waiter): void {
    const i = this.waiting.indexOf(w);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  /** `undo` once, then the waiting prefetches that now fit go out, oldest first. */
  private releaser(undo: () => void): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      undo();
      while (this.waiting.length > 0 && this.roomForPrefetch()) this.waiting.shift()!.go(this.takePrefetch());
    };
  }
}
