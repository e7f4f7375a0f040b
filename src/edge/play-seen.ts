/**
 * Play ids this edge served media for, in a bounded ring with sequence numbers, so every
 * steering replica can read them with its own cursor (`since`). Nothing is removed on read:
 * several replicas poll the same edge, and each counts only the ids it issued.
 * Pure: no I/O, no clock.
 */

/** One read of the ring. */
export interface SeenPlaysPage {
  /** Changes when the edge restarts: a cursor from another instance means nothing here. */
  instance: string;
  /** Pass as `since` next time. */
  next: number;
  /** Play ids with a sequence number in (since, next], oldest first. */
  ids: string[];
  /** More ids wait after `next` (the page was cut at its limit). */
  more: boolean;
  /** Some ids after `since` were overwritten before this read (the reader fell behind the ring). */
  lost: boolean;
}

export class SeenPlays {
  /** Slot of sequence number s: (s - 1) % capacity. */
  private readonly slots: (string | undefined)[];
  /** Ids in the ring → their sequence number: an id is recorded once while it is in the ring. */
  private readonly present = new Map<string, number>();
  /** Sequence number of the newest id (0: none yet). */
  private last = 0;

  constructor(
    readonly capacity: number,
    readonly instance: string,
  ) {
    if (!Number.isSafeInteger(capacity) || capacity <= 0) throw new RangeError('capacity must be a positive integer');
    this.slots = new Array<string | undefined>(capacity);
  }

  get size(): number {
    return this.present.size;
  }

  /** The id is in the ring. */
  has(id: string): boolean {
    return this.present.has(id);
  }

  /** Notes that media was served for a play. Every segment of a play carries its id: repeats are ignored. */
  record(id: string): void {
    if (this.present.has(id)) return;
    const seq = ++this.last;
    const slot = (seq - 1) % this.capacity;
    const evicted = this.slots[slot];
    if (evicted !== undefined && this.present.get(evicted) === seq - this.capacity) this.present.delete(evicted);
    this.slots[slot] = id;
    this.present.set(id, seq);
  }

  /**
   * Ids recorded after `since`, at most `limit`. A cursor ahead of the ring (another
   * instance's) starts over from the oldest id held.
   */
  since(since: number, limit: number): SeenPlaysPage {
    const oldest = Math.max(1, this.last - this.capacity + 1);
    let from = since > this.last ? oldest - 1 : since;
    const lost = from < oldest - 1 && this.last > 0;
    if (from < oldest - 1) from = oldest - 1;
    const to = Math.min(this.last, from + Math.max(0, limit));
    const ids: string[] = [];
    for (let s = from + 1; s <= to; s++) ids.push(this.slots[(s - 1) % this.capacity]!);
    return { instance: this.instance, next: to, ids, more: to < this.last, lost };
  }
}
