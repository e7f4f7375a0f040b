import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { fsyncDir, writeFileAtomic } from '../../common/atomic-file.js';
import { acquireLock } from '../lock-file.js';
import type { ByteRange, ObjectReader, ObjectStat, OriginStorage, StoredDocument, VersionWriter, WriteResult } from './storage.js';

/**
 * The origin's storage in a local folder (`origin.dataDir`), the default. Documents are replaced
 * by temp file + fsync + rename; a title version is written in a staging folder beside the title
 * folders and renamed into place whole; objects are read through an open file handle, which keeps
 * reading the same bytes even if a sweep deletes the file meanwhile.
 *
 * One origin process writes one folder (the play counts) and one ingest at a time (the lock
 * file). `writeDocument(…, ifTag)` compares and writes as one step inside this process; between
 * processes it only catches a file changed before the comparison (by hand, or by a process that
 * ignored that rule).
 */
export class DirStorage implements OriginStorage {
  constructor(readonly dir: string) {}

  get location(): string {
    return this.dir;
  }

  /** The file or folder of a key. */
  pathOf(key: string): string {
    return join(this.dir, ...key.split('/').filter((s) => s !== ''));
  }

  describe(key: string): string {
    return this.pathOf(key);
  }

  async stat(key: string): Promise<ObjectStat | undefined> {
    try {
      const st = await stat(this.pathOf(key));
      return { size: st.size, tag: tagOf(st) };
    } catch {
      return undefined;
    }
  }

  async readDocument(key: string): Promise<StoredDocument | undefined> {
    const path = this.pathOf(key);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      // The tag of the bytes read: stat the handle, not the path, which a rename may have moved on.
      const st = await fh.stat();
      return { text: await fh.readFile('utf8'), tag: tagOf(st) };
    } finally {
      await fh.close();
    }
  }

  async writeDocument(key: string, data: string, ifTag?: string | null): Promise<WriteResult> {
    const path = this.pathOf(key);
    // Compare and write as one step for every writer in this process (two stores on one folder).
    return oneAtATime(path, async () => {
      if (ifTag !== undefined) {
        const now = await this.stat(key);
        if ((now?.tag ?? null) !== ifTag) return { ok: false };
      }
      await mkdir(dirname(path), { recursive: true });
      await writeFileAtomic(path, data);
      const st = await this.stat(key);
      return { ok: true, tag: st?.tag ?? '' };
    });
  }

  async removeDocument(key: string, ifTag?: string): Promise<void> {
    if (ifTag !== undefined && (await this.stat(key))?.tag !== ifTag) return;
    await rm(this.pathOf(key), { force: true });
  }

  async openObject(key: string, size: number): Promise<ObjectReader | undefined> {
    let fh: FileHandle;
    try {
      fh = await open(this.pathOf(key), 'r');
    } catch {
      return undefined;
    }
    try {
      if ((await fh.stat()).size === size) return fileReader(fh);
    } catch {
      // unusable: fall through
    }
    await fh.close().catch(() => {});
    return undefined;
  }

  async list(prefix: string): Promise<string[]> {
    try {
      return await readdir(this.pathOf(prefix));
    } catch {
      return [];
    }
  }

  async removeTree(key: string): Promise<void> {
    await rm(this.pathOf(key), { recursive: true, force: true });
  }

  async stageVersion(title: string, version: string): Promise<VersionWriter> {
    const titlesRoot = this.pathOf('titles');
    await mkdir(titlesRoot, { recursive: true });
    // Staging sits beside the title folders under a name no title can have, so a title folder only
    // ever holds published versions (and the files of an unversioned entry).
    const staging = join(titlesRoot, `.staging-${title}-${process.pid}-${randomBytes(4).toString('hex')}`);
    const target = this.pathOf(`titles/${title}/${version}`);
    await mkdir(staging, { recursive: true });
    const dirs = new Set<string>([staging]);
    let published = false;
    return {
      async put(path: string, source: Readable): Promise<void> {
        const dest = join(staging, ...path.split('/'));
        const destDir = dirname(dest);
        if (!dirs.has(destDir)) {
          await mkdir(destDir, { recursive: true });
          dirs.add(destDir);
        }
        const fh = await open(dest, 'wx', 0o644);
        try {
          for await (const chunk of source) await fh.write(chunk as Buffer);
          await fh.sync();
        } finally {
          await fh.close();
        }
      },
      async publish(): Promise<void> {
        for (const d of dirs) await fsyncDir(d);
        await mkdir(dirname(target), { recursive: true });
        await rename(staging, target);
        published = true;
        await fsyncDir(dirname(target));
        await fsyncDir(titlesRoot);
      },
      async discard(): Promise<void> {
        await rm(published ? target : staging, { recursive: true, force: true }).catch(() => {});
      },
    };
  }

  async lock(key: string, what: string): Promise<() => Promise<void>> {
    await mkdir(this.dir, { recursive: true });
    return acquireLock(this.pathOf(key), what);
  }
}

/** Conditional writes in progress in this process, by file. */
const writing = new Map<string, Promise<unknown>>();

function oneAtATime<T>(path: string, job: () => Promise<T>): Promise<T> {
  const prev = writing.get(path) ?? Promise.resolve();
  const run = prev.then(job, job);
  const settled = run.catch(() => {});
  writing.set(path, settled);
  void settled.then(() => {
    if (writing.get(path) === settled) writing.delete(path);
  });
  return run;
}

/** An atomic rename always changes the inode; a rewrite in place changes size or time. */
function tagOf(st: { ino: number; size: number; mtimeMs: number }): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}`;
}

function fileReader(fh: FileHandle): ObjectReader {
  let closed = false;
  return {
    read(range: ByteRange): Readable {
      // `end` is inclusive for createReadStream; our ranges are half-open.
      return fh.createReadStream({ start: range.start, end: range.end - 1, autoClose: false, highWaterMark: 64 * 1024 });
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await fh.close().catch(() => {});
    },
  };
}
