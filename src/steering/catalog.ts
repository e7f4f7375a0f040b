import { Agent, request } from 'undici';
import { LRUCache } from 'lru-cache';
import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/logger.js';
import { objectKey } from '../common/paths.js';

/** A title as the origin's catalog lists it (GET /v1/catalog on the origin admin port). */
export interface CatalogTitle {
  title: string;
  kind: 'hls' | 'dash' | 'both';
  manifests: string[];
  files: { path: string; size: number; sha256: string; contentType: string }[];
  bytes: number;
  ingestedAt: string;
}

/** A verified, indexed catalog: swapped in whole, never edited. */
export interface CatalogView {
  titles: ReadonlyMap<string, { entry: CatalogTitle; files: ReadonlySet<string>; manifests: ReadonlySet<string> }>;
  loadedAt: number;
}

/** The origin could not be reached (or answered nonsense) and nothing usable is cached. */
export class OriginUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OriginUnavailableError';
  }
}

/** Verifies a /v1/catalog answer before it replaces the current one. */
export function indexCatalog(body: unknown, now: number): CatalogView {
  const list = (body as { titles?: unknown } | null)?.titles;
  if (!Array.isArray(list)) throw new Error('catalog: titles must be an array');
  const titles = new Map<string, { entry: CatalogTitle; files: Set<string>; manifests: Set<string> }>();
  list.forEach((t: CatalogTitle, i) => {
    if (typeof t?.title !== 'string' || !Array.isArray(t.files) || !Array.isArray(t.manifests)) {
      throw new Error(`catalog: titles[${i}] is not a title entry`);
    }
    const files = new Set<string>();
    for (const f of t.files) if (typeof f?.path === 'string') files.add(f.path);
    titles.set(t.title, { entry: t, files, manifests: new Set(t.manifests) });
  });
  return { titles, loadedAt: now };
}

export interface CatalogSourceOptions {
  originUrl: string;
  originAdminUrl: string;
  adminToken?: string;
  clock: Clock;
  logger: Logger;
  /** Periodic refresh (ms). Default 30000. */
  refreshMs?: number;
  /** A miss (unknown title or file) refreshes at most this often (ms). Default 3000. */
  missRefreshMs?: number;
  /** Request timeout to the origin (ms). Default 3000. */
  timeoutMs?: number;
  /** Bytes of manifest text kept (VOD manifests never change). Default 64 MiB. */
  manifestCacheBytes?: number;
}

/**
 * Steering's view of the origin: the catalog (fetched at start, refreshed periodically and
 * on a miss, verified then swapped) and manifest text (fetched from the origin's public
 * port once, coalesced, cached: VOD manifests are immutable).
 */
export class CatalogSource {
  private view: CatalogView | undefined;
  private refreshing: Promise<CatalogView | undefined> | undefined;
  private lastAttempt = -Infinity;
  private timer: ReturnType<Clock['setTimeout']> | undefined;
  private readonly dispatcher: Agent;
  private readonly manifests: LRUCache<string, string>;
  private stopped = false;

  constructor(private readonly opts: CatalogSourceOptions) {
    const timeout = opts.timeoutMs ?? 3000;
    this.dispatcher = new Agent({ connections: 16, headersTimeout: timeout, bodyTimeout: timeout, connectTimeout: timeout });
    this.manifests = new LRUCache<string, string>({
      maxSize: opts.manifestCacheBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (v) => Math.max(1, v.length),
      fetchMethod: async (key) => {
        const [title, file] = JSON.parse(key) as [string, string];
        return this.fetchManifest(title, file);
      },
    });
  }

  /** The current catalog, if one was ever loaded. */
  current(): CatalogView | undefined {
    return this.view;
  }

  /** Fetches the catalog now (coalesced). Keeps the old one on failure; resolves to what is current. */
  refresh(): Promise<CatalogView | undefined> {
    if (this.refreshing) return this.refreshing;
    this.lastAttempt = this.opts.clock.monotonic();
    this.refreshing = this.fetchCatalog()
      .then((v) => {
        const before = this.view?.titles.size;
        this.view = v;
        if (before !== v.titles.size) this.opts.logger.info({ titles: v.titles.size }, 'catalog loaded');
        return v;
      })
      .catch((err: unknown) => {
        this.opts.logger.warn({ err: (err as Error).message }, 'catalog refresh failed; keeping the previous one');
        return this.view;
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  /** After a miss: refresh unless one was tried in the last missRefreshMs. */
  async refreshAfterMiss(): Promise<CatalogView | undefined> {
    if (this.opts.clock.monotonic() - this.lastAttempt < (this.opts.missRefreshMs ?? 3000)) return this.refreshing ?? this.view;
    return this.refresh();
  }

  /** Loads once, then refreshes every refreshMs. */
  async start(): Promise<void> {
    await this.refresh();
    const tick = () => {
      if (this.stopped) return;
      void this.refresh().finally(() => {
        if (!this.stopped) this.timer = this.opts.clock.setTimeout(tick, this.opts.refreshMs ?? 30_000);
      });
    };
    this.timer = this.opts.clock.setTimeout(tick, this.opts.refreshMs ?? 30_000);
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.opts.clock.clearTimeout(this.timer);
    await this.refreshing;
    await this.dispatcher.close();
  }

  /** A manifest's text (cached). Throws OriginUnavailableError if it cannot be fetched. */
  async manifest(title: string, file: string): Promise<string> {
    const text = await this.manifests.fetch(objectKey(title, file));
    if (text === undefined) throw new OriginUnavailableError(`manifest ${title}/${file} unavailable`);
    return text;
  }

  private async fetchCatalog(): Promise<CatalogView> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.opts.adminToken) headers.authorization = `Bearer ${this.opts.adminToken}`;
    const res = await request(`${this.opts.originAdminUrl}/v1/catalog`, { headers, dispatcher: this.dispatcher });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`origin catalog answered HTTP ${res.statusCode}`);
    }
    return indexCatalog(await res.body.json(), this.opts.clock.now());
  }

  private async fetchManifest(title: string, file: string): Promise<string> {
    let res;
    try {
      res = await request(`${this.opts.originUrl}/o/${title}/${file}`, { dispatcher: this.dispatcher });
    } catch (err) {
      throw new OriginUnavailableError(`origin unreachable: ${(err as Error & { code?: string }).code ?? (err as Error).message}`);
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new OriginUnavailableError(`origin answered HTTP ${res.statusCode} for ${title}/${file}`);
    }
    return res.body.text();
  }
}
