import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import type { ClusterConfig } from '../common/config.js';
import { type Clock, systemClock } from '../common/clock.js';
import { contentTypeFor } from '../common/mime.js';
import { isValidFilePath, isValidTitle } from '../common/paths.js';
import { type CatalogFile, type TitleEntry, type TitleKind, entryDir, loadCatalog, saveCatalog, titleDir } from './catalog.js';
import { extractDashReferences } from './dash-mpd.js';
import { fsyncDir } from '../common/atomic-file.js';
import { OriginInputError } from './errors.js';
import { extractHlsReferences, segmentBudget } from './hls-playlist.js';
import { acquireLock } from './lock-file.js';
import { newVersionId } from './title-versions.js';
import { DEFAULT_VERSION_GRACE_MS, sweepVersions } from './version-sweep.js';

/** A manifest bigger than this is not a manifest. */
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

export interface IngestDeps {
  clock?: Clock;
  /** 8 hex digits that make the version id unique (tests pin it). Default: random. */
  versionTag?: () => string;
  /** How long a replaced version stays on disk after it was replaced. Default 10 minutes. */
  versionGraceMs?: number;
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
 * folder dataDir/titles/{title}/{version}/ (through a staging folder and a rename: never half a
 * title), hashes them on the way, then names that version in the catalog, saved atomically.
 * Nothing already published is written again: an origin still serving the previous catalog keeps
 * reading the previous version's bytes, so an ETag always names the body sent with it. Replaced
 * versions are deleted by a later ingest, once no origin can still be reading them
 * (version-sweep.ts). Errors about the folder are user-facing and name the file at fault.
 */
export async function ingestTitle(config: ClusterConfig, title: string, dir: string, deps: IngestDeps = {}): Promise<TitleEntry> {
  const clock = deps.clock ?? systemClock;
  const versionTag = deps.versionTag ?? (() => randomBytes(4).toString('hex'));
  if (!isValidTitle(title)) {
    throw new OriginInputError(`title "${title}" must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  const plan = await planTitle(dir, { maxSegments: config.origin.maxSegmentsPerTitle });

  const dataDir = config.origin.dataDir;
  const titlesRoot = join(dataDir, 'titles');
  await mkdir(titlesRoot, { recursive: true });
  const release = await acquireLock(join(dataDir, '.ingest.lock'), 'another ingest into this origin');
  // Staging sits beside the title folders under a name no title can have, so a title folder only
  // ever holds published versions (and the files of an unversioned entry).
  const staging = join(titlesRoot, `.staging-${title}-${process.pid}-${randomBytes(4).toString('hex')}`);
  let published: string | undefined;
  try {
    const files = await copyAndHash(plan.files, staging);
    // Read the catalog only now, under the lock, so a concurrent ingest's title is kept.
    const catalog = await loadCatalog(dataDir);
    const now = clock.now();
    let version = newVersionId(now, versionTag());
    while (version === catalog.get(title)?.version || (await exists(join(titleDir(dataDir, title), version)))) {
      version = newVersionId(now, randomBytes(4).toString('hex'));
    }
    const entry: TitleEntry = {
      title,
      kind: plan.kind,
      manifests: plan.manifests,
      files,
      bytes: files.reduce((n, f) => n + f.size, 0),
      ingestedAt: new Date(now).toISOString(),
      version,
    };
    const target = entryDir(dataDir, entry);
    await mkdir(titleDir(dataDir, title), { recursive: true });
    await rename(staging, target);
    published = target;
    await fsyncDir(titleDir(dataDir, title));
    await fsyncDir(titlesRoot);
    const next = catalog.withTitle(entry);
    await saveCatalog(dataDir, next);
    published = undefined; // the catalog names it now: it is no longer ours to remove
    // Housekeeping: a failure here leaves old versions for the next ingest to delete, it does not
    // undo this one.
    await sweepVersions(dataDir, next, now, deps.versionGraceMs ?? DEFAULT_VERSION_GRACE_MS).catch(() => {});
    return entry;
  } finally {
    // A version the catalog never named was never served: nothing can be reading it. (A save can
    // fail after its rename, e.g. in the folder fsync, so ask the catalog rather than assume.)
    if (published && !(await catalogNames(dataDir, title, basename(published)))) {
      await rm(published, { recursive: true, force: true }).catch(() => {});
    }
    await rm(staging, { recursive: true, force: true }).catch(() => {});
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

/** Copies each file into `staging`, hashing the bytes as they are written, fsyncing each. */
async function copyAndHash(files: SourceFile[], staging: string): Promise<CatalogFile[]> {
  await mkdir(staging, { recursive: true });
  const out: CatalogFile[] = [];
  const dirs = new Set<string>([staging]);
  for (const f of files) {
    const dest = join(staging, ...f.path.split('/'));
    const destDir = dirname(dest);
    if (!dirs.has(destDir)) {
      await mkdir(destDir, { recursive: true });
      dirs.add(destDir);
    }
    const hash = createHash('sha256');
    let size = 0;
    const fh = await open(dest, 'wx', 0o644);
    try {
      for await (const chunk of createReadStream(f.abs)) {
        const buf = chunk as Buffer;
        hash.update(buf);
        size += buf.length;
        await fh.write(buf);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (size !== f.size) throw new OriginInputError(`${f.path} changed while it was being copied; try again`);
    out.push({ path: f.path, size, sha256: hash.digest('hex'), contentType: contentTypeFor(f.path) });
  }
  for (const d of dirs) await fsyncDir(d);
  return out;
}

async function catalogNames(dataDir: string, title: string, version: string): Promise<boolean> {
  try {
    return (await loadCatalog(dataDir)).get(title)?.version === version;
  } catch {
    return true; // cannot tell: keep it, the sweep removes it later if it is an orphan
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}
