/**
 * Which worker of an edge node fetches a slice upstream: the first to ask claims it, the
 * others wait for its outcome. When the claimant stores the slice on the shared disk tier, the
 * waiters read it from there ('stored'); when it gives up (an upstream failure, a slice it could
 * not store, or it died), the next waiter is handed the claim ('fetch'). One upstream fetch per
 * slice per node, however many workers want it. Pure: the primary wires it to IPC.
 */

export type ClaimVerdict = 'fetch' | 'stored';

interface Claim {
  owner: number;
  waiters: { worker: number; answer: (v: ClaimVerdict) => void }[];
}

export class ClaimTable {
  private readonly claims = new Map<string, Claim>();

  /** Slices claimed right now. */
  get size(): number {
    return this.claims.size;
  }

  /**
   * Worker `worker` wants to fetch `slice`: `answer` is called once, at once with 'fetch' if no
   * one holds it, later with 'fetch' or 'stored' if another worker does.
   */
  claim(slice: string, worker: number, answer: (v: ClaimVerdict) => void): void {
    const held = this.claims.get(slice);
    if (!held) {
      this.claims.set(slice, { owner: worker, waiters: [] });
      answer('fetch');
      return;
    }
    // A worker asking again for its own claim lost track of it (a restart reuses numbers only
    // after `workerGone`): it keeps the claim.
    if (held.owner === worker) {
      answer('fetch');
      return;
    }
    held.waiters.push({ worker, answer });
  }

  /** `slice` is on the shared disk now: every waiter reads it from there. */
  stored(slice: string): void {
    const held = this.claims.get(slice);
    if (!held) return;
    this.claims.delete(slice);
    for (const w of held.waiters) w.answer('stored');
  }

  /** The claimant is done with `slice` without storing it: the next waiter fetches it. */
  release(slice: string, worker: number): void {
    const held = this.claims.get(slice);
    if (!held || held.owner !== worker) return;
    this.handOver(slice, held);
  }

  /** A worker exited: its claims pass on, its waits are forgotten. */
  workerGone(worker: number): void {
    for (const [slice, held] of [...this.claims]) {
      held.waiters = held.waiters.filter((w) => w.worker !== worker);
      if (held.owner === worker) this.handOver(slice, held);
    }
  }

  private handOver(slice: string, held: Claim): void {
    const next = held.waiters.shift();
    if (!next) {
      this.claims.delete(slice);
      return;
    }
    held.owner = next.worker;
    next.answer('fetch');
  }
}
