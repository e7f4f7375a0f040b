import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { ClusterConfig } from '../common/config.js';
import { type Clock, systemClock } from '../common/clock.js';
import { contentTypeFor } from '../common/mime.js';
import { isValidFilePath, isValidTitle } from '../common/paths.js';
import { type CatalogFile, type TitleEntry, type TitleKind, loadCatalog, saveCatalog, titleDir } from './catalog.js';
import { extractDashReferences } from './dash-mpd.js';
import { fsyncDir } from '../common/atomic-file.js';
import { OriginInputError } from './errors.js';
import { extractHlsReferences, segmentBudget } from './hls-playlist.js';
import { acquireLock } from './lock-file.js';

/** A manifest bigger than this is not a manifest. */
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

export interface IngestDeps {
  clock?: Clock;
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
 * that every file they reference exists inside the folder, copies the files into
 * dataDir/titles/{title}/ through a staging folder and a rename (never half a title), hashes
 * them on the way, then updates the catalog atomically. Errors about the folder are
 * user-facing and name the file at fault.
 */
export async function ingestTitle(config: ClusterConfig, title: string, dir: string, deps: IngestDeps = {}): Promise<TitleEntry> {
  const clock = deps.clock ?? systemClock;
  if (!isValidTitle(title)) {
    throw new OriginInputError(`title "${title}" must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  const plan = await planTitle(dir, { maxSegments: config.origin.maxSegmentsPerTitle });

  const dataDir = config.origin.dataDir;
  const titlesRoot = join(dataDir, 'titles');
  await mkdir(titlesRoot, { recursive: true });
  const release = await acquireLock(join(dataDir, '.ingest.lock'), 'another ingest into this origin');
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const staging = join(titlesRoot, `.staging-${title}-${tag}`);
  const old = join(titlesRoot, `.old-${title}-${tag}`);
  const final = titleDir(dataDir, title);
  try {
    const files = await copyAndHash(plan.files, staging);
    const entry: TitleEntry = {
      title,
      kind: plan.kind,
      manifests: plan.manifests,
      files,
      bytes: files.reduce((n, f) => n + f.size, 0),
      ingestedAt: new Date(clock.now()).toISOString(),
    };
    // Read the catalog only now, under the lock, so a concurrent ingest's title is kept.
    const catalog = await loadCatalog(dataDir);

    const hadOld = await exists(final);
    if (hadOld) await rename(final, old);
    try {
      await rename(staging, final);
      await fsyncDir(titlesRoot);
      await saveCatalog(dataDir, catalog.withTitle(entry));
    } catch (err) {
      // Put the previous version back so the catalog and the files still agree.
      await rm(final, { recursive: true, force: true }).catch(() => {});
      if (hadOld) await rename(old, final).catch(() => {});
      throw err;
    }
    if (hadOld) await rm(old, { recursive: true, force: true });
    return entry;
  } finally {
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

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}
