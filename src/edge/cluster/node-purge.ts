import { objectKey } from '../../common/paths.js';
import { type PurgeSelector, purgeMatchesKey } from '../../common/purge-selector.js';

export interface PurgeCounts {
  objects: number;
  bytes: number;
}

/** What the node's purge needs of its disk tier (the owner). */
export interface PurgedDisk {
  keys(): Iterable<string>;
  purge(key: string): number;
}

/**
 * A multi-worker node's purge, in an order that leaves nothing of the purged version behind:
 *
 * 1. the shared disk: what it holds goes, and the write generation of each key moves on, so a
 *    worker's commit prepared before it is refused;
 * 2. every worker's cache (`purgeWorkers`): metadata, memory, and the slice fetches still running
 *    or being stored — none is joined, served or stored after this;
 * 3. the shared disk again. A worker's commit of an object the disk did not hold at (1) — the
 *    first slices of a title just fetched — was not refused there; but the commit was sent before
 *    that worker's answer to (2), on the same channel, so it has landed by now: it goes, and since
 *    its put may have taught a worker purged at (2) the old version, the workers purge once more.
 */
export async function purgeNode(sel: PurgeSelector, disk: PurgedDisk, purgeWorkers: () => Promise<PurgeCounts[]>): Promise<PurgeCounts> {
  const first = purgeDisk(sel, disk);
  let answers = await purgeWorkers();
  const late = purgeDisk(sel, disk);
  if (late.objects > 0) answers = answers.concat(await purgeWorkers());
  return {
    objects: Math.max(first.objects, late.objects, ...answers.map((a) => a.objects)),
    bytes: first.bytes + late.bytes + answers.reduce((n, a) => n + a.bytes, 0),
  };
}

function purgeDisk(sel: PurgeSelector, disk: PurgedDisk): PurgeCounts {
  const counts = { objects: 0, bytes: 0 };
  for (const key of [...disk.keys()]) {
    if (!purgeMatchesKey(sel, key)) continue;
    counts.objects++;
    counts.bytes += disk.purge(key);
  }
  // One file names its key even when the disk does not hold it yet: its generation moves on too.
  if (sel.file !== undefined && counts.objects === 0) disk.purge(objectKey(sel.title, sel.file));
  return counts;
}
