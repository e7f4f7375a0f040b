import { closeSync, open } from 'node:fs';

/** One open slice file. Readers hold a reference while their read is in flight. */
export interface OpenFile {
  readonly path: string;
  /** The descriptor; valid while the reader holds its reference. */
  fd: number;
  /** References held by readers. */
  refs: number;
  /** Out of the cache (evicted or invalidated): closed when the last reader lets go. */
  stale: boolean;
  /** Set while the file is being opened; readers that come meanwhile wait for it. */
  opening?: Promise<void>;
}

export interface FdCacheStats {
  /** Descriptors open now, cached or held by a reader after their eviction. */
  open: number;
  /** Files in the cache. */
  cached: number;
  hits: number;
  opens: number;
}

/**
 * A bounded cache of open slice files (nginx's open_file_cache, for one purpose): a disk hit
 * then costs one positional read, not open + read + close. Slice files are immutable once in
 * place (their name hashes the representation), so a cached descriptor always reads the right
 * bytes, even after its name was unlinked; a descriptor is closed when it is evicted
 * (least recently used beyond `max`) or invalidated (the slice left the index), but never
 * while a read holds it — a closed number can be reused by the next open, and a read on it
 * would read another file.
 */
export class FdCache {
  /** Cached files, least recently used first (Map keeps insertion order). */
  private readonly files = new Map<string, OpenFile>();
  private openCount = 0;
  private hits = 0;
  private opens = 0;

  constructor(private readonly max: number) {}

  stats(): FdCacheStats {
    return { open: this.openCount, cached: this.files.size, hits: this.hits, opens: this.opens };
  }

  /** Whether `path` has a descriptor in the cache (for tests). */
  has(path: string): boolean {
    return this.files.has(path);
  }

  /** The open file for `path` with a reference taken, if it is cached and open: no await on a hit. */
  tryAcquire(path: string): OpenFile | undefined {
    const f = this.files.get(path);
    if (!f || f.opening) return undefined;
    this.files.delete(path);
    this.files.set(path, f);
    f.refs++;
    this.hits++;
    return f;
  }

  /** The open file for `path` with a reference taken, opening it if need be. Rejects if it cannot be opened. */
  async acquire(path: string): Promise<OpenFile> {
    const hit = this.tryAcquire(path);
    if (hit) return hit;
    let f = this.files.get(path);
    if (!f) {
      const file: OpenFile = { path, fd: -1, refs: 0, stale: false };
      file.opening = new Promise<void>((resolve, reject) => {
        open(path, 'r', (err, fd) => {
          file.opening = undefined;
          if (err) {
            if (this.files.get(path) === file) this.files.delete(path);
            file.stale = true;
            reject(err);
            return;
          }
          file.fd = fd;
          this.openCount++;
          this.opens++;
          // Evicted or invalidated while it was opening, and nobody waits: close at once.
          if (file.stale && file.refs === 0) this.closeFile(file);
          resolve();
        });
      });
      f = file;
      this.files.set(path, f);
      this.trim();
    } else {
      this.files.delete(path);
      this.files.set(path, f);
    }
    f.refs++;
    try {
      await f.opening;
    } catch (err) {
      f.refs--;
      throw err;
    }
    return f;
  }

  /** Gives back a reference; a stale file closes with its last one. */
  release(f: OpenFile): void {
    f.refs--;
    if (f.refs === 0 && f.stale && f.fd >= 0) this.closeFile(f);
  }

  /** The file at `path` changed or left the index: no new reader gets its descriptor. */
  invalidate(path: string): void {
    const f = this.files.get(path);
    if (!f) return;
    this.files.delete(path);
    this.retire(f);
  }

  /** Closes every descriptor (those held by readers when their reads finish). */
  closeAll(): void {
    for (const f of this.files.values()) this.retire(f);
    this.files.clear();
  }

  private trim(): void {
    for (const f of this.files.values()) {
      if (this.files.size <= this.max) break;
      this.files.delete(f.path);
      this.retire(f);
    }
  }

  private retire(f: OpenFile): void {
    f.stale = true;
    if (f.refs === 0 && f.fd >= 0) this.closeFile(f);
  }

  private closeFile(f: OpenFile): void {
    const fd = f.fd;
    f.fd = -1;
    this.openCount--;
    // Synchronous: closing a read-only descriptor flushes nothing, and "closed" then means closed.
    try {
      closeSync(fd);
    } catch {
      // EBADF cannot happen (we own it); EIO on a read-only close tells us nothing we can act on.
    }
  }
}
