/**
 * Versions of a title on the origin's disk: each ingest publishes its files in a folder of its own,
 * dataDir/titles/{title}/{version}/, never written again, so a catalog entry that names a version
 * names exactly one set of bytes. Pure: names and times in, decisions out.
 */

/** `v` + the ingest time (UTC, to the millisecond) + `-` + 8 random hex digits. */
const VERSION_RE = /^v(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z-[0-9a-f]{8}$/;

/**
 * A new version id. The time makes ids sort in publication order (so a retired version's
 * successor is the next name) and lets the sweep tell how long ago a version was replaced without
 * any other record; the tag keeps two ingests in the same millisecond apart.
 */
export function newVersionId(now: number, tag: string): string {
  if (!/^[0-9a-f]{8}$/.test(tag)) throw new Error(`version tag must be 8 hex digits, got "${tag}"`);
  const iso = new Date(now).toISOString(); // 2026-03-02T12:00:00.123Z
  return `v${iso.replace(/[-:.]/g, '')}-${tag}`;
}

export function isVersionId(name: string): boolean {
  return VERSION_RE.test(name);
}

/** When the version was published (ms since the epoch), or undefined for a name that is not a version id. */
export function versionTime(name: string): number | undefined {
  const m = VERSION_RE.exec(name);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s, ms] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  return Number.isNaN(t) ? undefined : t;
}

export interface SweepInput {
  /** Names found in dataDir/titles/{title}/: version folders, and the files and folders of the unversioned layout. */
  names: readonly string[];
  /**
   * What the catalog says the title is: `undefined` if the catalog does not know the title (its
   * folder is left alone), `{ version: undefined }` for an entry of the unversioned layout (files
   * loose in the title folder), `{ version }` for a versioned one. `publishedAt` (the entry's
   * ingestedAt) is when the catalog started naming it, which is later than its id's time when
   * the id was chosen before the upload (S3): the version it replaced counts from then.
   */
  current: { version?: string; publishedAt?: number } | undefined;
  now: number;
  /** How long a replaced version stays readable after the catalog stopped naming it. */
  graceMs: number;
}

/**
 * Which names of a title folder may be deleted now. A version is kept while the catalog names
 * it, and for `graceMs` after the version that replaced it was published: an origin serves from
 * the catalog it has loaded (re-read every few seconds), and a request resolves its path before
 * it opens the file, so a replaced version must outlive both. A version no later one replaced (a
 * crashed ingest's, or one from before a clock step) counts from its own publication. The loose
 * files of the unversioned layout are the version replaced by the oldest version folder.
 */
export function planSweep(input: SweepInput): string[] {
  const { current, now, graceMs } = input;
  if (!current) return [];
  const versions = input.names.filter(isVersionId).sort();
  const expired = (retiredAt: number) => now - retiredAt >= graceMs;
  const remove: string[] = [];
  versions.forEach((v, i) => {
    if (v === current.version) return;
    const successor = versions[i + 1];
    let retiredAt = successor !== undefined ? versionTime(successor)! : versionTime(v)!;
    if (successor !== undefined && successor === current.version && current.publishedAt !== undefined) {
      retiredAt = Math.max(retiredAt, current.publishedAt);
    }
    if (expired(retiredAt)) remove.push(v);
  });
  const loose = input.names.filter((n) => !isVersionId(n));
  const firstRetiredAt = versions[0] === undefined ? 0 : Math.max(versionTime(versions[0])!, versions[0] === current.version ? (current.publishedAt ?? 0) : 0);
  if (current.version !== undefined && loose.length > 0 && versions.length > 0 && expired(firstRetiredAt)) {
    remove.push(...loose);
  }
  return remove;
}
