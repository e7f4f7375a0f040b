import { join } from 'node:path';
import { isValidFilePath, isValidTitle } from '../common/paths.js';
import { OriginInputError } from './errors.js';
import { asStorage } from './storage/open-storage.js';
import type { OriginStorage } from './storage/storage.js';
import { isVersionId } from './title-versions.js';

/** One file of a title, as ingested. */
export interface CatalogFile {
  /** Title-relative path, e.g. `stream_360p.mp4` or `video/seg-001.m4s`. */
  path: string;
  size: number;
  /** Lowercase hex SHA-256 of the content; edges verify fills against it. */
  sha256: string;
  contentType: string;
}

export type TitleKind = 'hls' | 'dash' | 'both';

/** A title of the catalog (the shape of `GET /v1/catalog` and of catalog.json). */
export interface TitleEntry {
  title: string;
  kind: TitleKind;
  /** Top-level playable manifests (no other manifest references them), e.g. `master.m3u8`. */
  manifests: string[];
  /** Every file of the title, manifests included, sorted by path. */
  files: CatalogFile[];
  /** Sum of the files' sizes. */
  bytes: number;
  /** ISO time of the ingest; it is the Last-Modified of every file of the title. */
  ingestedAt: string;
  /**
   * The folder this ingest published the files in, dataDir/titles/{title}/{version}/ (see
   * title-versions.ts); a new one on every ingest, even of the same bytes. Absent for titles
   * ingested before versioned folders, whose files sit in dataDir/titles/{title}/ itself.
   */
  version?: string;
}

/** The body of the origin's admin `GET /v1/catalog`. */
export interface CatalogResponse {
  titles: TitleEntry[];
}

/** catalog.json on disk. */
export interface CatalogDocument {
  version: 1;
  titles: TitleEntry[];
}

export const CATALOG_FILE = 'catalog.json';

export function catalogPath(dataDir: string): string {
  return join(dataDir, CATALOG_FILE);
}

/** A title's folder, dataDir/titles/{title}/: its version folders (and the files of an unversioned entry). */
export function titleDir(dataDir: string, title: string): string {
  return join(dataDir, 'titles', title);
}

/** The folder holding the files of exactly this catalog entry. */
export function entryDir(dataDir: string, entry: Pick<TitleEntry, 'title' | 'version'>): string {
  const dir = titleDir(dataDir, entry.title);
  return entry.version === undefined ? dir : join(dir, entry.version);
}

/** Where one file of a catalog entry is on disk. */
export function entryFilePath(dataDir: string, entry: Pick<TitleEntry, 'title' | 'version'>, path: string): string {
  return join(entryDir(dataDir, entry), ...path.split('/'));
}

/** A catalog file that does not verify; names the field, like a ConfigError does. */
export class CatalogError extends OriginInputError {
  constructor(source: string, field: string, problem: string) {
    super(`${source}: ${field}: ${problem}`);
    this.name = 'CatalogError';
  }
}

const SHA256_RE = /^[0-9a-f]{64}$/;
const KINDS: readonly TitleKind[] = ['hls', 'dash', 'both'];

/**
 * Verifies a parsed catalog document completely (every title, every file) and returns its
 * entries; anything wrong is a CatalogError naming the field. Pure.
 */
export function verifyCatalog(raw: unknown, source: string): TitleEntry[] {
  const fail = (field: string, problem: string): never => {
    throw new CatalogError(source, field, problem);
  };
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(raw)) return fail('(root)', 'must be an object');
  if (raw.version !== 1) fail('version', 'must be 1');
  if (!Array.isArray(raw.titles)) return fail('titles', 'must be an array');
  const seen = new Set<string>();
  return raw.titles.map((t: unknown, i): TitleEntry => {
    const f = `titles[${i}]`;
    if (!isObj(t)) return fail(f, 'must be an object');
    if (typeof t.title !== 'string' || !isValidTitle(t.title)) fail(`${f}.title`, 'must be a valid title id');
    const title = t.title as string;
    if (seen.has(title)) fail(`${f}.title`, `"${title}" appears twice`);
    seen.add(title);
    if (!KINDS.includes(t.kind as TitleKind)) fail(`${f}.kind`, `must be one of ${KINDS.join(', ')}`);
    if (!Array.isArray(t.files) || t.files.length === 0) fail(`${f}.files`, 'must be a non-empty array');
    const paths = new Set<string>();
    let total = 0;
    const files = (t.files as unknown[]).map((file, j): CatalogFile => {
      const ff = `${f}.files[${j}]`;
      if (!isObj(file)) return fail(ff, 'must be an object');
      if (typeof file.path !== 'string' || !isValidFilePath(file.path)) fail(`${ff}.path`, 'must be a valid relative file path');
      if (paths.has(file.path as string)) fail(`${ff}.path`, `"${String(file.path)}" appears twice`);
      paths.add(file.path as string);
      if (typeof file.size !== 'number' || !Number.isSafeInteger(file.size) || file.size < 0) fail(`${ff}.size`, 'must be a non-negative integer');
      if (typeof file.sha256 !== 'string' || !SHA256_RE.test(file.sha256)) fail(`${ff}.sha256`, 'must be 64 lowercase hex digits');
      if (typeof file.contentType !== 'string' || file.contentType === '') fail(`${ff}.contentType`, 'must be a non-empty string');
      total += file.size as number;
      return { path: file.path as string, size: file.size as number, sha256: file.sha256 as string, contentType: file.contentType as string };
    });
    if (!Array.isArray(t.manifests) || t.manifests.length === 0) fail(`${f}.manifests`, 'must be a non-empty array');
    (t.manifests as unknown[]).forEach((m, j) => {
      if (typeof m !== 'string' || !paths.has(m)) fail(`${f}.manifests[${j}]`, 'must name one of the title\'s files');
    });
    if (t.bytes !== total) fail(`${f}.bytes`, `must be the sum of the file sizes (${total})`);
    if (typeof t.ingestedAt !== 'string' || Number.isNaN(Date.parse(t.ingestedAt))) fail(`${f}.ingestedAt`, 'must be an ISO date');
    if (t.version !== undefined && (typeof t.version !== 'string' || !isVersionId(t.version))) {
      fail(`${f}.version`, 'must be a version id like v20260302T120000123Z-1a2b3c4d');
    }
    return {
      title,
      kind: t.kind as TitleKind,
      manifests: [...(t.manifests as string[])],
      files,
      bytes: total,
      ingestedAt: t.ingestedAt as string,
      ...(t.version !== undefined ? { version: t.version as string } : {}),
    };
  });
}

/**
 * The catalog in memory: immutable, indexed by title and file. A change makes a new Catalog
 * that is swapped in whole, so a request never sees half an update.
 */
export class Catalog {
  private readonly byTitle: Map<string, { entry: TitleEntry; files: Map<string, CatalogFile> }>;

  constructor(entries: readonly TitleEntry[]) {
    this.byTitle = new Map(
      [...entries]
        .sort((a, b) => (a.title < b.title ? -1 : a.title > b.title ? 1 : 0))
        .map((e) => [e.title, { entry: e, files: new Map(e.files.map((f) => [f.path, f])) }]),
    );
  }

  static empty(): Catalog {
    return new Catalog([]);
  }

  get(title: string): TitleEntry | undefined {
    return this.byTitle.get(title)?.entry;
  }

  /** The catalog's record of one file, or undefined: the only way to a file the origin serves. */
  file(title: string, path: string): CatalogFile | undefined {
    return this.byTitle.get(title)?.files.get(path);
  }

  /** Titles sorted by id. */
  titles(): TitleEntry[] {
    return [...this.byTitle.values()].map((t) => t.entry);
  }

  get size(): number {
    return this.byTitle.size;
  }

  get bytes(): number {
    let n = 0;
    for (const t of this.byTitle.values()) n += t.entry.bytes;
    return n;
  }

  /** A new catalog with `entry` added or replacing the title of the same id. */
  withTitle(entry: TitleEntry): Catalog {
    return new Catalog([...this.titles().filter((t) => t.title !== entry.title), entry]);
  }

  toDocument(): CatalogDocument {
    return { version: 1, titles: this.titles() };
  }
}

/** The catalog as stored, with the tag of the bytes it was read from (for a conditional save). */
export interface StoredCatalog {
  catalog: Catalog;
  /** null: there is no catalog.json yet. */
  tag: string | null;
}

/**
 * Loads and verifies catalog.json from a storage (or a data folder, by its path). None yet is an
 * empty catalog; one that does not parse or verify is a CatalogError (never half a catalog).
 */
export async function loadCatalog(where: string | OriginStorage): Promise<Catalog> {
  return (await readCatalog(asStorage(where))).catalog;
}

/** loadCatalog, with the tag a conditional saveCatalog needs. */
export async function readCatalog(storage: OriginStorage): Promise<StoredCatalog> {
  const source = storage.describe(CATALOG_FILE);
  let doc;
  try {
    doc = await storage.readDocument(CATALOG_FILE);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // A storage error already names the object: say it once.
    const why = e.code ?? (e.message?.startsWith(`${source}: `) ? e.message.slice(source.length + 2) : (e.message ?? String(err)));
    throw new CatalogError(source, '(file)', `cannot read: ${why}`);
  }
  if (doc === undefined) return { catalog: Catalog.empty(), tag: null };
  let raw: unknown;
  try {
    raw = JSON.parse(doc.text);
  } catch (err) {
    throw new CatalogError(source, '(file)', `not valid JSON: ${(err as Error).message}`);
  }
  return { catalog: new Catalog(verifyCatalog(raw, source)), tag: doc.tag };
}

/**
 * Writes the catalog whole (a reader sees the old one or the new one). With `ifTag`, only over
 * the catalog of that tag (null: only if there is none yet): resolves false when another writer
 * got there first, and the caller reads again.
 */
export async function saveCatalog(where: string | OriginStorage, catalog: Catalog, ifTag?: string | null): Promise<boolean> {
  const r = await asStorage(where).writeDocument(CATALOG_FILE, JSON.stringify(catalog.toDocument(), null, 2) + '\n', ifTag);
  return r.ok;
}
