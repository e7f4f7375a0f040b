import { readdirSync, readlinkSync } from 'node:fs';

/** Descriptors of this process open on `path` (Linux: /proc/self/fd), "(deleted)" or not. */
export function fdsOn(path: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target === path || target === `${path} (deleted)`) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}
