import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isValidTitle } from '../common/paths.js';
import { type Catalog, titleDir } from './catalog.js';
import { planSweep } from './title-versions.js';

/** How long a replaced version stays on disk by default: far beyond the origin's 2 s catalog poll. */
export const DEFAULT_VERSION_GRACE_MS = 10 * 60_000;

/**
 * Deletes what no origin can still be reading (planSweep decides, per title folder), and the
 * staging folders of ingests that crashed. Only under the ingest lock: an ingest in progress
 * owns its staging folder. Deleting a file an answer has open is safe (the open handle keeps
 * reading the same bytes); a path not yet opened is what the grace period protects.
 */
export async function sweepVersions(dataDir: string, catalog: Catalog, now: number, graceMs: number): Promise<string[]> {
  const root = join(dataDir, 'titles');
  const removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (name.startsWith('.staging-') || name.startsWith('.old-')) {
      await rm(join(root, name), { recursive: true, force: true });
      removed.push(name);
      continue;
    }
    if (!isValidTitle(name)) continue;
    const entry = catalog.get(name);
    let inside: string[];
    try {
      inside = await readdir(titleDir(dataDir, name));
    } catch {
      continue; // not a folder, or gone
    }
    const remove = planSweep({ names: inside, current: entry ? { version: entry.version } : undefined, now, graceMs });
    for (const r of remove) {
      await rm(join(titleDir(dataDir, name), r), { recursive: true, force: true });
      removed.push(`${name}/${r}`);
    }
  }
  return removed;
}
