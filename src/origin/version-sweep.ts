import { isValidTitle } from '../common/paths.js';
import type { Catalog } from './catalog.js';
import { asStorage } from './storage/open-storage.js';
import { type OriginStorage, isStagingName, titleKey } from './storage/storage.js';
import { planSweep } from './title-versions.js';

/** How long a replaced version stays stored by default: far beyond the origin's 2 s catalog poll. */
export const DEFAULT_VERSION_GRACE_MS = 10 * 60_000;

/**
 * Deletes what no origin can still be reading (planSweep decides, per title folder), and the
 * staging folders of ingests that crashed. Only under the ingest lock: an ingest in progress
 * owns its staging folder, and on S3 its version's keys. Deleting a file an answer has open is
 * safe on disk (the open handle keeps reading the same bytes); a path not yet opened, or on S3 a
 * range not yet fetched, is what the grace period protects.
 */
export async function sweepVersions(where: string | OriginStorage, catalog: Catalog, now: number, graceMs: number): Promise<string[]> {
  const storage = asStorage(where);
  const removed: string[] = [];
  let names: string[];
  try {
    names = await storage.list('titles/');
  } catch {
    return removed;
  }
  for (const name of names) {
    if (isStagingName(name)) {
      await storage.removeTree(`titles/${name}`);
      removed.push(name);
      continue;
    }
    if (!isValidTitle(name)) continue;
    const entry = catalog.get(name);
    let inside: string[];
    try {
      inside = await storage.list(titleKey(name));
    } catch {
      continue; // not a folder, or gone
    }
    const remove = planSweep({
      names: inside,
      current: entry ? { version: entry.version, publishedAt: Date.parse(entry.ingestedAt) } : undefined,
      now,
      graceMs,
    });
    for (const r of remove) {
      await storage.removeTree(`${titleKey(name)}${r}`);
      removed.push(`${name}/${r}`);
    }
  }
  return removed;
}
