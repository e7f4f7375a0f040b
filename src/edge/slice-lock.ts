/**
 * One upstream fetch of one slice, shared by every request that needs it while it runs.
 *
 * States: `fetching` (bytes arrive and are appended) → `done` (whole, verified length)
 * or `failed` (the writer gives up with a reason; readers that still need bytes ask
 * the lock again and a new writer is elected). Readers stream from any offset as bytes
 * arrive, at their own pace: what a slow reader may hold back is bounded by the slice,
 * which the fetch keeps anyway until it is stored.
 */
export type SliceFetchState = 'fetching' | 'done' | 'failed';

export class SliceFetch<Head> {
  state: SliceFetchState = 'fetching';
  error?: Error;
  /** Resolves when upstream's answer head is known (status, size, validators). */
  readonly head: Promise<Head>;
  private resolveHead!: (h: Head) => void;
  private rejectHead!: (e: Error) => void;
  private readonly chunks: Buffer[] = [];
  private received = 0;
  private wake: (() => void)[] = [];
  /** Requests that joined this fetch instead of starting their own. */
  waiters = 0;
  /** The head once known, for callers that must decide without awaiting. */
  knownHead?: Head;

  constructor() {
    this.head = new Promise<Head>((resolve, reject) => {
      this.resolveHead = resolve;
      this.rejectHead = reject;
    });
    // A fetch nobody awaits the head of must not become an unhandled rejection.
    this.head.catch(() => {});
  }

  get length(): number {
    return this.received;
  }

  setHead(head: Head): void {
    this.knownHead ??= head;
    this.resolveHead(head);
  }

  push(chunk: Buffer): void {
    if (this.state !== 'fetching' || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.received += chunk.length;
    this.notify();
  }

  finish(): Buffer {
    this.state = 'done';
    const whole = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.received);
    this.chunks.length = 0;
    this.chunks.push(whole);
    this.notify();
    return whole;
  }

  fail(error: Error): void {
    if (this.state !== 'fetching') return;
    this.state = 'failed';
    this.error = error;
    this.rejectHead(error);
    this.notify();
  }

  /** Resolves once the fetch is `done` or `failed` (never rejects): for a caller that wants no bytes, only the end. */
  async settled(): Promise<void> {
    while (this.state === 'fetching') await new Promise<void>((resolve) => this.wake.push(resolve));
  }

  private notify(): void {
    const w = this.wake;
    this.wake = [];
    for (const fn of w) fn();
  }

  /**
   * Yields bytes [from, to) of the slice as they arrive. Throws the writer's error if the
   * fetch fails before `to` is reached; the caller may resume from where it got to.
   */
  async *read(from: number, to: number): AsyncGenerator<Buffer> {
    let pos = from;
    while (pos < to) {
      // Find the chunk holding `pos`: chunks are few (a slice), a linear walk is fine.
      let offset = 0;
      let yielded = false;
      for (const c of this.chunks) {
        const cEnd = offset + c.length;
        if (pos < cEnd) {
          const piece = c.subarray(pos - offset, Math.min(cEnd, to) - offset);
          pos += piece.length;
          yielded = true;
          yield piece;
          break; // chunks may have been merged by finish(); walk again from the start
        }
        offset = cEnd;
      }
      if (yielded) continue;
      if (this.state === 'failed') throw this.error ?? new Error('upstream fetch failed');
      if (this.state === 'done') return; // slice shorter than asked: caller checks
      await new Promise<void>((resolve) => this.wake.push(resolve));
    }
  }
}

/** The in-flight fetches by slice key: the first miss becomes the writer, later ones wait. */
export class SliceLock<Head> {
  private readonly inflight = new Map<string, SliceFetch<Head>>();

  get size(): number {
    return this.inflight.size;
  }

  get(key: string): SliceFetch<Head> | undefined {
    return this.inflight.get(key);
  }

  /**
   * Returns the running fetch for `key`, or starts one with `start` (the write permit).
   * `joined` tells whether this caller waits on someone else's fetch.
   */
  acquire(key: string, start: (fetch: SliceFetch<Head>) => void): { fetch: SliceFetch<Head>; joined: boolean } {
    const running = this.inflight.get(key);
    if (running && running.state !== 'failed') {
      running.waiters++;
      return { fetch: running, joined: true };
    }
    const fetch = new SliceFetch<Head>();
    this.inflight.set(key, fetch);
    start(fetch);
    return { fetch, joined: false };
  }

  keys(): IterableIterator<string> {
    return this.inflight.keys();
  }

  /**
   * Forgets the fetches whose key matches (a purge): later callers start fetches of their own;
   * those already joined keep reading theirs, and its writer's release is then a no-op.
   */
  forgetWhere(matches: (key: string) => boolean): void {
    for (const key of [...this.inflight.keys()]) if (matches(key)) this.inflight.delete(key);
  }

  /** The writer releases the slot once the slice is stored (or failed). */
  release(key: string, fetch: SliceFetch<Head>): void {
    if (this.inflight.get(key) === fetch) this.inflight.delete(key);
  }
}
