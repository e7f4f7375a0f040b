import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { Transform } from 'node:stream';
import type { ClusterConfig } from '../common/config.js';
import { type Clock, systemClock } from '../common/clock.js';
import { contentTypeFor } from '../common/mime.js';
import { isValidFilePath, isValidTitle } from '../common/paths.js';
import { type CatalogFile, type TitleEntry, type TitleKind, readCatalog, saveCatalog } from './catalog.js';
import { extractDashReferences } from './dash-mpd.js';
import { OriginInputError } from './errors.js';
import { extractHlsReferences, segmentBudget } from './hls-playlist.js';
import { originStorage } from './storage/open-storage.js';
import { type OriginStorage, type VersionWriter, titleKey } from './storage/storage.js';
import { newVersionId } from './title-versions.js';
import { DEFAULT_VERSION_GRACE_MS, sweepVersions } from './version-sweep.js';

/** A manifest bigger than this is not a manifest. */
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

/** Times another writer's catalog save is merged with ours before giving up. */
const CATALOG_SAVE_TRIES = 5;

export interface IngestDeps {
  clock?: Clock;
  /** 8 hex digits that make the version id unique (tests pin it). Default: random. */
  versionTag?: () => string;
  /** How long a replaced version stays stored after it was replaced. Default 10 minutes. */
  versionGraceMs?: number;
  /** Where to write; default: the storage the config's origin.storage names. */
  storage?: OriginStorage;
}

/** A file of the source folder that the title needs. */
interface SourceFile {
  path: string;
  abs: string;
  size: number;
}

/** What a folder's manifests say the title is made of (before any copying). */
export interface TitlePlan {
  kind: TitleKind;
  manifests: string[];
  files: SourceFile[];
}

const isManifestName = (p: string) => /\.(m3u8|mpd)$/i.test(p);

/**
 * Adds (or replaces) a title from an HLS or DASH output folder: reads every manifest, checks
 * that every file they reference exists inside the folder, copies the files into a new version
 * titles/{title}/{version}/ of the origin's storage (on disk through a staging folder and a
 * rename: never half a title), hashes them on the way, then names that version in the catalog,
 * saved whole. Nothing already published is written again: an origin still serving the previous
 * catalog keeps reading the previous version's bytes, so an ETag always names the body sent with
 * it. Replaced versions are deleted by a later ingest, once no origin can still be reading them
 * (version-sweep.ts). Errors about the folder are user-facing and name the file at fault.
 *
 * One ingest at a time per storage (a lock; on S3 a lease). The catalog is saved only over the
 * catalog this ingest read (a conditional write): a writer that slipped past the lock is merged
 * with, never overwritten.
 */
export async function ingestTitle(config: ClusterConfig, title: string, dir: string, deps: IngestDeps = {}): Promise<TitleEntry> {
  const clock = deps.clock ?? systemClock;
  const versionTag = deps.versionTag ?? (() => randomBytes(4).toString('hex'));
  if (!isValidTitle(title)) {
    throw new OriginInputError(`title "${title}" must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  const plan = await planTitle(dir, { maxSegments: config.origin.maxSegmentsPerTitle });

  const storage = deps.storage ?? originStorage(config.origin);
  const release = await storage.lock('.ingest.lock', 'another ingest into this origin');
  let writer: VersionWriter | undefined;
  let version: string | undefined;
  let named = false;
  try {
    // The version is named before the copy: on S3 the files are uploaded straight to its keys.
    let { catalog } = await readCatalog(storage);
    version = newVersionId(clock.now(), versionTag());
    const existing = new Set(await storage.list(titleKey(title)));
    while (version === catalog.get(title)?.version || existing.has(version)) {
      version = newVersionId(clock.now(), randomBytes(4).toString('hex'));
    }
    writer = await storage.stageVersion(title, version);
    const files = await copyAndHash(plan.files, writer);
    await writer.publish();
    const now = clock.now();
    const entry: TitleEntry = {
      title,
      kind: plan.kind,
      manifests: plan.manifests,
      files,
      bytes: files.reduce((n, f) => n + f.size, 0),
      ingestedAt: new Date(now).toISOString(),
      version,
    };
    // Read again only now, so a title another writer added meanwhile is kept.
    let next = catalog;
    for (let attempt = 0; ; attempt++) {
      const stored = await readCatalog(storage);
      catalog = stored.catalog;
      next = catalog.withTitle(entry);
      if (await saveCatalog(storage, next, stored.tag)) break;
      if (attempt + 1 >= CATALOG_SAVE_TRIES) throw new OriginInputError(`${storage.describe('catalog.json')} keeps changing under this ingest; try again`);
    }
    named = true; // the catalog names it now: it is no longer ours to remove
    // Housekeeping: a failure here leaves old versions for the next ingest to delete, it does not
    // undo this one.
    await sweepVersions(storage, next, now, deps.versionGraceMs ?? DEFAULT_VERSION_GRACE_MS).catch(() => {});
    return entry;
  } finally {
    // A version the catalog never named was never served: nothing can be reading it. (A save can
    // fail after its rename, e.g. in the folder fsync, so ask the catalog rather than assume.)
    if (writer && !named && !(await catalogNames(storage, title, version!))) await writer.discard();
    await release();
  }
}

/**
 * Reads a folder's manifests and follows their references. Top-level manifests are the ones
 * no other manifest references (a multivariant playlist, an MPD); a folder holding only a
 * media playlist has that one.
 */
export async function planTitle(dir: string, limits: { maxSegments?: number } = {}): Promise<TitlePlan> {
  const segments = limits.maxSegments === undefined ? undefined : segmentBudget(limits.maxSegments);
  let root: string;
  try {
    root = await realpath(resolve(dir));
  } catch {
    throw new OriginInputError(`folder ${dir} does not exist`);
  }
  if (!(await stat(root)).isDirectory()) throw new OriginInputError(`${dir} is not a folder`);

  const found = (await walkFiles(root)).filter(isManifestName).sort();
  if (found.length === 0) throw new OriginInputError(`${dir}: no HLS (.m3u8) or DASH (.mpd) manifest found`);
  for (const m of found) {
    if (!isValidFilePath(m)) throw new OriginInputError(`${dir}: manifest name "${m}" has characters we do not serve`);
  }

  const files = new Map<string, SourceFile>();
  const referenced = new Set<string>();
  const queue = [...found];
  const parsed = new Set<string>();
  while (queue.length > 0) {
    const manifest = queue.shift()!;
    if (parsed.has(manifest)) continue;
    parsed.add(manifest);
    const src = await sourceFile(root, dir, manifest, undefined);
    files.set(manifest, src);
    if (src.size > MAX_MANIFEST_BYTES) throw new OriginInputError(`${dir}: ${manifest} is too big for a manifest`);
    const text = await readFile(src.abs, 'utf8');

    const refs: { path: string; byteRange?: { offset: number; length: number }; playlist: boolean }[] = /\.mpd$/i.test(manifest)
      ? extractDashReferences(text, manifest, { segments }).map((r) => ({ path: r.path, byteRange: r.byteRange, playlist: false }))
      : extractHlsReferences(text, manifest, { segments }).refs.map((r) => ({ path: r.path, byteRange: r.byteRange, playlist: r.kind === 'playlist' }));

    for (const ref of refs) {
      referenced.add(ref.path);
      if (ref.playlist && !/\.m3u8$/i.test(ref.path)) {
        throw new OriginInputError(`${dir}: ${manifest} lists "${ref.path}" as a playlist, but it is not an .m3u8 file`);
      }
      let f = files.get(ref.path);
      if (!f) {
        f = await sourceFile(root, dir, ref.path, manifest);
        files.set(ref.path, f);
      }
      if (ref.byteRange && ref.byteRange.offset + ref.byteRange.length > f.size) {
        throw new OriginInputError(
          `${dir}: ${manifest} addresses bytes ${ref.byteRange.offset}-${ref.byteRange.offset + ref.byteRange.length - 1} of ${ref.path}, which has only ${f.size} bytes`,
        );
      }
      if (ref.playlist || (isManifestName(ref.path) && !parsed.has(ref.path))) queue.push(ref.path);
    }
  }

  const manifests = found.filter((m) => !referenced.has(m));
  if (manifests.length === 0) throw new OriginInputError(`${dir}: every manifest is referenced by another (a loop?)`);
  const hls = manifests.some((m) => /\.m3u8$/i.test(m));
  const dash = manifests.some((m) => /\.mpd$/i.test(m));
  return {
    kind: hls && dash ? 'both' : hls ? 'hls' : 'dash',
    manifests,
    files: [...files.values()].sort((a, b) => (a.path < b.path ? -1 : 1)),
  };
}

/**
 * The source of a title-relative path: must exist, be a regular file, and stay inside the
 * folder even through symlinks.
 */
async function sourceFile(root: string, dir: string, path: string, referencedBy: string | undefined): Promise<SourceFile> {
  const by = referencedBy ? `, referenced by ${referencedBy},` : '';
  const abs = join(root, ...path.split('/'));
  let real: string;
  try {
    await lstat(abs);
    real = await realpath(abs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new OriginInputError(`${dir}: file ${path}${by} is missing`);
    throw new OriginInputError(`${dir}: cannot read ${path}${by}: ${code ?? String(err)}`);
  }
  if (real !== root && !real.startsWith(root + sep)) {
    throw new OriginInputError(`${dir}: ${path}${by} is a link to outside the folder`);
  }
  const st = await stat(real);
  if (!st.isFile()) throw new OriginInputError(`${dir}: ${path}${by} is not a regular file`);
  return { path, abs: real, size: st.size };
}

/** Title-relative paths of every file under `root` (symlinked folders are not followed). */
async function walkFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (d: string, depth: number) => {
    if (depth > 16) return;
    for (const e of await readdir(d, { withFileTypes: true })) {
      const abs = join(d, e.name);
      if (e.isDirectory()) await visit(abs, depth + 1);
      else if (e.isFile() || e.isSymbolicLink()) out.push(relative(root, abs).split(sep).join('/'));
    }
  };
  await visit(root, 0);
  return out;
}

/** Writes each file into the new version, hashing and counting the bytes as they go. */
async function copyAndHash(files: SourceFile[], writer: VersionWriter): Promise<CatalogFile[]> {
  const out: CatalogFile[] = [];
  for (const f of files) {
    const hash = createHash('sha256');
    let size = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    const src = createReadStream(f.abs);
    src.once('error', (err) => counted.destroy(err));
    await writer.put(f.path, src.pipe(counted));
    if (size !== f.size) throw new OriginInputError(`${f.path} changed while it was being copied; try again`);
    out.push({ path: f.path, size, sha256: hash.digest('hex'), contentType: contentTypeFor(f.path) });
  }
  return out;
}

async function catalogNames(storage: OriginStorage, title: string, version: string): Promise<boolean> {
  try {
    return (await readCatalog(storage)).catalog.get(title)?.version === version;
  } catch {
    return true; // cannot tell: keep it, the sweep removes it later if it is an orphan
  }
}
