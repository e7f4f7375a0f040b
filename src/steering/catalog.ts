import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';
import { type ClientTls, connectFor } from '../common/tls.js';
import { SwappableAgent } from '../common/swappable-agent.js';
import { LRUCache } from 'lru-cache';
import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/logger.js';
import { type OriginSigner, signedOriginPath } from '../common/origin-signing.js';

/** A title as the origin's catalog lists it (GET /v1/catalog on the origin admin port). */
export interface CatalogTitle {
  title: string;
  kind: 'hls' | 'dash' | 'both';
  manifests: string[];
  files: { path: string; size: number; sha256: string; contentType: string }[];
  bytes: number;
  ingestedAt: string;
  /** The version folder of this ingest (absent for titles ingested before versions). */
  version?: string;
}

/** A verified, indexed catalog: swapped in whole, never edited. */
export interface CatalogView {
  titles: ReadonlyMap<string, { entry: CatalogTitle; files: ReadonlySet<string>; manifests: ReadonlySet<string>; digests: ReadonlyMap<string, string> }>;
  loadedAt: number;
}

/** The origin could not be reached (or answered nonsense) and nothing usable is cached. */
export class OriginUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OriginUnavailableError';
  }
}

/** The origin served a manifest whose sha256 is not the one our catalog lists. */
class ManifestChangedError extends Error {
  constructor(title: string, file: string) {
    super(`manifest ${title}/${file} does not match the catalog's sha256 (re-ingested?)`);
    this.name = 'ManifestChangedError';
  }
}

/** Verifies a /v1/catalog answer before it replaces the current one. */
export function indexCatalog(body: unknown, now: number): CatalogView {
  const list = (body as { titles?: unknown } | null)?.titles;
  if (!Array.isArray(list)) throw new Error('catalog: titles must be an array');
  const titles = new Map<string, { entry: CatalogTitle; files: Set<string>; manifests: Set<string>; digests: Map<string, string> }>();
  list.forEach((t: CatalogTitle, i) => {
    if (typeof t?.title !== 'string' || !Array.isArray(t.files) || !Array.isArray(t.manifests)) {
      throw new Error(`catalog: titles[${i}] is not a title entry`);
    }
    const files = new Set<string>();
    const digests = new Map<string, string>();
    for (const f of t.files) {
      if (typeof f?.path !== 'string') continue;
      files.add(f.path);
      if (typeof f.sha256 === 'string') digests.set(f.path, f.sha256);
    }
    titles.set(t.title, { entry: t, files, manifests: new Set(t.manifests), digests });
  });
  return { titles, loadedAt: now };
}

export interface CatalogSourceOptions {
  originUrl: string;
  originAdminUrl: string;
  adminToken?: string;
  /** Trust and identity for an https:// origin (clusterClientTls). */
  tls?: ClientTls;
  /** The cluster's keys: the origin's /o/ serves edges and steering only, on a token. */
  signing: OriginSigner;
  clock: Clock;
  logger: Logger;
  /** Periodic refresh (ms). Default 30000. */
  refreshMs?: number;
  /** A miss (unknown title or file) refreshes at most this often (ms). Default 3000. */
  missRefreshMs?: number;
  /** Request timeout to the origin (ms). Default 3000. */
  timeoutMs?: number;
  /** Bytes of manifest text kept (keyed by the catalog's sha256: a re-ingest is a new key). Default 64 MiB. */
  manifestCacheBytes?: number;
}

/**
 * Steering's view of the origin: the catalog (fetched at start, refreshed periodically and
 * on a miss, verified then swapped) and manifest text (fetched from the origin's public
 * port once per catalog digest, coalesced, cached). A re-ingest changes a manifest under the
 * same name, so the text is keyed by the sha256 the catalog lists and checked against it: a
 * body that does not match means our catalog is behind, which a refresh settles.
 */
export class CatalogSource {
  private view: CatalogView | undefined;
  private refreshing: Promise<CatalogView | undefined> | undefined;
  /** Monotonic ms the refresh under way (or the last one) started. */
  private lastAttempt = -Infinity;
  /** Monotonic ms the fetch that produced the current view started: it shows the origin as of then or later. */
  private viewFrom = -Infinity;
  private timer: ReturnType<Clock['setTimeout']> | undefined;
  private readonly dispatcher: SwappableAgent;
  private readonly manifests: LRUCache<string, string>;
  private stopped = false;
  private signing: OriginSigner;

  constructor(private readonly opts: CatalogSourceOptions) {
    this.signing = opts.signing;
    const timeout = opts.timeoutMs ?? 3000;
    this.dispatcher = new SwappableAgent((tls) => new Agent({ connections: 16, headersTimeout: timeout, bodyTimeout: timeout, connect: connectFor(tls, timeout) }), opts.tls);
    this.manifests = new LRUCache<string, string>({
      maxSize: opts.manifestCacheBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (v) => Math.max(1, v.length),
      fetchMethod: async (key) => {
        const [title, file, digest] = JSON.parse(key) as [string, string, string];
        const bytes = await this.fetchManifest(title, file);
        if (createHash('sha256').update(bytes).digest('hex') !== digest) throw new ManifestChangedError(title, file);
        return bytes.toString('utf8');
      },
    });
  }

  /** Signs the next manifest fetches with these keys (reload). */
  setSigning(signing: OriginSigner): void {
    this.signing = signing;
  }

  /** New connections to the origin trust these CAs and show this certificate (reload). */
  setTls(tls: ClientTls | undefined): void {
    this.dispatcher.setTls(tls);
  }

  /** The current catalog, if one was ever loaded. */
  current(): CatalogView | undefined {
    return this.view;
  }

  /** Fetches the catalog now (coalesced). Keeps the old one on failure; resolves to what is current. */
  refresh(): Promise<CatalogView | undefined> {
    if (this.refreshing) return this.refreshing;
    const from = (this.lastAttempt = this.opts.clock.monotonic());
    this.refreshing = this.fetchCatalog()
      .then((v) => {
        const before = this.view?.titles.size;
        this.view = v;
        this.viewFrom = from;
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
    if (this.opts.clock.monotonic() - this.lastAttempt < this.missRefreshMs) return this.refreshing ?? this.view;
    return this.refresh();
  }

  /**
   * After a miss that may be answered as permanent (410): a view that shows the origin as of
   * `since` (monotonic ms, when the request arrived) or later — the current one if it is that
   * new, else the refresh under way when it started since then, else a new refresh unless one
   * started in the last missRefreshMs. `fresh` is false when the view is older than `since`
   * (rate-limited, or the origin did not answer): then a title missing from it may just be new.
   */
  async viewAfter(since: number): Promise<{ view: CatalogView | undefined; fresh: boolean }> {
    for (;;) {
      if (this.viewFrom >= since) return { view: this.view, fresh: true };
      if (this.refreshing) {
        const startedSince = this.lastAttempt >= since;
        await this.refreshing;
        if (startedSince) return { view: this.view, fresh: this.viewFrom >= since };
        continue; // it started before the request: its answer may predate the title
      }
      if (this.opts.clock.monotonic() - this.lastAttempt < this.missRefreshMs) return { view: this.view, fresh: false };
      void this.refresh();
    }
  }

  /** A miss refreshes the catalog at most this often (ms). */
  get missRefreshMs(): number {
    return this.opts.missRefreshMs ?? 3000;
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
    return (await this.manifestVersion(title, file)).text;
  }

  /**
   * A manifest's text and the catalog sha256 it matches (cached by that digest). If the origin
   * already serves another version than our catalog names, the catalog is refreshed once and
   * the manifest fetched for the new digest.
   */
  async manifestVersion(title: string, file: string): Promise<{ text: string; digest: string }> {
    const digestIn = (v: CatalogView | undefined) => v?.titles.get(title)?.digests.get(file) ?? '';
    let digest = digestIn(this.view);
    for (let attempt = 0; ; attempt++) {
      try {
        const text = await this.manifests.fetch(JSON.stringify([title, file, digest]));
        if (text === undefined) throw new OriginUnavailableError(`manifest ${title}/${file} unavailable`);
        return { text, digest };
      } catch (err) {
        if (!(err instanceof ManifestChangedError) || attempt > 0) {
          throw err instanceof ManifestChangedError ? new OriginUnavailableError(err.message) : err;
        }
        const before = digest;
        digest = digestIn(await this.refresh());
        if (digest === before) throw new OriginUnavailableError(err.message);
      }
    }
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

  private async fetchManifest(title: string, file: string): Promise<Buffer> {
    let res;
    try {
      // A short token: the fetch leaves now (origin-signing.ts).
      const path = signedOriginPath(this.signing, title, file, this.opts.clock.now() / 1000);
      res = await request(`${this.opts.originUrl.replace(/\/+$/, '')}${path}`, { dispatcher: this.dispatcher });
    } catch (err) {
      throw new OriginUnavailableError(`origin unreachable: ${(err as Error & { code?: string }).code ?? (err as Error).message}`);
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new OriginUnavailableError(`origin answered HTTP ${res.statusCode} for ${title}/${file}`);
    }
    return Buffer.from(await res.body.arrayBuffer());
  }
}
