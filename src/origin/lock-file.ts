import { open, readFile, rm } from 'node:fs/promises';
import { OriginInputError } from './errors.js';

/**
 * An exclusive lock between processes on one data directory (two `reelcdn ingest` runs must
 * not both read-modify-write the catalog). The file holds the owner's pid so that a lock left
 * by a crashed run is recognised and taken over instead of blocking ingest forever.
 */
export async function acquireLock(path: string, what: string): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      await fh.writeFile(String(process.pid));
      await fh.close();
      return async () => {
        await rm(path, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new OriginInputError(`${what} is already running (pid ${pid}); try again when it has finished`);
      }
      if (pid === process.pid) {
        throw new OriginInputError(`${what} is already running in this process; try again when it has finished`);
      }
      await rm(path, { force: true }); // stale: its owner is gone
    }
  }
  throw new OriginInputError(`could not take the lock ${path}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
