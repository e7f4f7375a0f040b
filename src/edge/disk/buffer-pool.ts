/**
 * Buffers for disk reads, given back for reuse when their last holder lets go. A fresh 2 MiB
 * buffer per disk hit measured dearer than the read itself (page faults of new memory and the
 * collections it drives: bench/disk-read.ts); a buffer that comes back costs nothing.
 *
 * Safety rests on one rule: a buffer returns to the pool only when every reference is released,
 * and whoever may still touch the bytes holds one. A holder that never releases (the memory tier
 * keeping a disk hit) is safe too: the pool forgets what it hands out, so that buffer is simply
 * collected as garbage one day.
 */
export interface SliceLease {
  /** The slice bytes. Valid until the last reference is released; never touch them after. */
  readonly data: Buffer;
  /** Takes another reference (a second holder: a socket write, a cache). */
  retain(): SliceLease;
  /** Gives one reference back; the last one returns the buffer to the pool. */
  release(): void;
}

export interface BufferPoolOptions {
  /** Size of each pooled buffer: a read needing more, or less than half of it, gets its own. */
  bufferBytes: number;
  /** Free buffers kept at most (the pool's idle memory is at most bufferBytes × this). */
  maxFree: number;
  /** Tests: fill a buffer with 0xEE when it comes back, so a holder that reads after releasing sees garbage. */
  poison?: boolean;
}

export class BufferPool {
  private readonly free: ArrayBuffer[] = [];
  private reused = 0;
  private allocated = 0;

  constructor(private readonly opts: BufferPoolOptions) {}

  stats(): { free: number; reused: number; allocated: number } {
    return { free: this.free.length, reused: this.reused, allocated: this.allocated };
  }

  /** A buffer of at least `size` bytes (its first `size` are yours) and the function that gives it back. */
  take(size: number): { buf: Buffer; giveBack: () => void } {
    const pooled = size <= this.opts.bufferBytes && size * 2 > this.opts.bufferBytes;
    if (!pooled) return { buf: Buffer.allocUnsafeSlow(size), giveBack: () => {} };
    let ab = this.free.pop();
    if (ab) this.reused++;
    else {
      ab = Buffer.allocUnsafeSlow(this.opts.bufferBytes).buffer as ArrayBuffer;
      this.allocated++;
    }
    const store = ab;
    return {
      buf: Buffer.from(store, 0, size),
      giveBack: () => {
        if (this.opts.poison) new Uint8Array(store).fill(0xee);
        if (this.free.length < this.opts.maxFree) this.free.push(store);
      },
    };
  }

  /** A lease on `data` (a view of a buffer from `take`) holding one reference. */
  lease(data: Buffer, giveBack: () => void): SliceLease {
    let refs = 1;
    const lease: SliceLease = {
      data,
      retain() {
        if (refs <= 0) throw new Error('SliceLease: retain after the last release');
        refs++;
        return lease;
      },
      release() {
        if (refs <= 0) throw new Error('SliceLease: released more often than retained');
        if (--refs === 0) giveBack();
      },
    };
    return lease;
  }
}

/** Gives back one reference of each lease. */
export function releaseAll(leases: SliceLease[]): void {
  for (const l of leases) l.release();
}

/**
 * Releases `leases` once `res` is done with their bytes: when it closes (after its last write
 * completed, or on an abort). A response already closed releases them now.
 */
export function releaseWhenClosed(res: { closed: boolean; once(event: 'close', fn: () => void): unknown }, leases: SliceLease[]): void {
  if (leases.length === 0) return;
  if (res.closed) releaseAll(leases);
  else res.once('close', () => releaseAll(leases));
}
