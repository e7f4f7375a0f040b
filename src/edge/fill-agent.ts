import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { writeFileAtomic } from '../common/atomic-file.js';
import type { Clock, TimerHandle } from '../common/clock.js';
import type { ClusterConfig, EdgeConfig } from '../common/config.js';
import { type FillFile, type FillManifest, type FillSource, placedBytes } from '../common/fill-manifest.js';
import type { Logger } from '../common/logger.js';
import { type ClientTls, connectFor } from '../common/tls.js';
import { objectKey } from '../common/paths.js';
import { parseContentRange } from '../common/range.js';
import { signedOriginPath } from '../common/origin-signing.js';
import { signQuery } from '../common/signing.js';
import type { DiskTier, StoredMeta } from './disk-tier.js';
import { type FillWindow, inWindow, nextWindowStart, parseWindow } from './fill-window.js';
import { RateLimiter } from './rate-limiter.js';
import { sliceBounds, sliceCount } from './slice-math.js';

/** A file's way through tonight's fill. */
export type FileFillStatus =
  /** Not started. */
  | 'pending'
  /** Its peer source does not hold it yet; retried after the other files. */
  | 'deferred'
  | 'fetching'
  /** Verified against the catalog's sha256 (a prefix: its slices' digests) and visible (pinned). */
  | 'done'
  /** Every source failed; the error says why. */
  | 'failed';

/** The agent: idle between passes, waiting for its window, or filling. */
export type AgentState = 'idle' | 'waiting-for-window' | 'filling';

export interface FileProgress {
  title: string;
  file: string;
  /** Bytes to place: the file, or its prefix when the manifest gives a range. */
  size: number;
  status: FileFillStatus;
  source?: string;
  bytesDone: number;
  error?: string;
}

export interface FillProgress {
  state: AgentState;
  manifestVersion?: string;
  window: string;
  timezone: string;
  windowOpen: boolean;
  nextWindowStart: string;
  files: { total: number; done: number; failed: number; deferred: number };
  bytes: { total: number; done: number; fetched: number };
  /** Fetched bytes per second over the current (or last) pass. */
  rateBytesPerSec: number;
  bySource: Record<string, number>;
  startedAt?: string;
  finishedAt?: string;
  heldTitles: string[];
  errors: string[];
  perFile: FileProgress[];
}

export interface FillAgentOptions {
  config: ClusterConfig;
  edge: EdgeConfig;
  disk: DiskTier;
  clock: Clock;
  logger: Logger;
  adminToken?: string;
  /** Trust and identity for https:// origins and peers (clusterClientTls). */
  tls?: ClientTls;
  /** True while clients need the node more than the fill does (fill pauses briefly). */
  busy?: () => boolean;
  /** Called per fetched chunk, for metrics. */
  onBytes?: (source: 'peer' | 'origin', bytes: number) => void;
  /** Called once a file is verified and published, so the serving side learns it (peers ask for it with only-if-cached). */
  onPublished?: (key: string) => void;
    /** How long a file waits for its peer source before falling back to the origin. Default 10 min. */
  peerWaitMs?: number;
}

type FetchOutcome = { kind: 'ok' } | { kind: 'not-available' } | { kind: 'error'; error: string };

interface FillStateDoc {
  version: 1;
  /** objectKey → sha256 of files verified and published. */
  verified: Record<string, string>;
  /** objectKey → end (bytes) of the prefix verified, for files held only in part (FillFile.range). */
  prefixes?: Record<string, number>;
}

function fillLimiter(o: FillAgentOptions): RateLimiter {
  return new RateLimiter(o.edge.fill.bytesPerSec, o.clock, Math.max(o.edge.fill.bytesPerSec, o.edge.sliceBytes));
}

function fillAgent(tls: ClientTls | undefined): Agent {
  return new Agent({ connections: 4, headersTimeout: 10_000, bodyTimeout: 30_000, connect: connectFor(tls, 3_000) });
}

/** Thrown inside a pass when the window closes: the pass stops, progress is kept. */
class WindowClosed extends Error {}

/**
 * The edge's fill agent: fetches its manifest, and inside its window (or when told to run
 * now) fetches what it lacks, most popular first, under the node's rate limit, from a peer
 * that holds the file before the origin. Slices are staged on disk (kept across restarts, so a
 * fill resumes), the file is verified against the catalog's sha256 and only then published,
 * pinned. Files that left the manifest are unpinned and stay as cache.
 */
export class FillAgent {
  private window: FillWindow;
  private limiter: RateLimiter;
  private http: Agent;
  private readonly statePath: string;
  private verified = new Map<string, string>();
  /** Verified files held only in part: key → end of the prefix verified (bytes). */
  private prefixes = new Map<string, number>();
  private manifest?: FillManifest;
  private state: AgentState = 'idle';
  private files = new Map<string, FileProgress>();
  private bySource: Record<string, number> = {};
  private errors: string[] = [];
  private fetched = 0;
  private startedAt?: number;
  private finishedAt?: number;
  /** The same moments on the monotonic clock: the pass's rate must not jump with the wall clock. */
  private startedMono?: number;
  private finishedMono?: number;
  private running?: Promise<FillProgress>;
  private timer?: TimerHandle;
  private stopped = false;

  constructor(private opts: FillAgentOptions) {
    this.window = parseWindow(opts.edge.fill.window, opts.edge.timezone);
    this.limiter = fillLimiter(opts);
    this.statePath = join(opts.edge.dataDir, 'fill-state.json');
    this.http = fillAgent(opts.tls);
  }

  /**
   * The cluster file was reloaded: the window, rate, poll interval, signing keys, origin and TLS
   * of the requests from now on are these (dataDir and sliceBytes need a restart: the caller
   * keeps them). A request under way finishes as it began; a wait for the window is timed again.
   */
  reconfigure(config: ClusterConfig, edge: EdgeConfig, tls: ClientTls | undefined): void {
    const prev = this.opts;
    this.opts = { ...prev, config, edge, tls };
    if (edge.fill.window !== prev.edge.fill.window || edge.timezone !== prev.edge.timezone) this.window = parseWindow(edge.fill.window, edge.timezone);
    if (edge.fill.bytesPerSec !== prev.edge.fill.bytesPerSec) this.limiter = fillLimiter(this.opts);
    if (tls !== prev.tls) {
      const old = this.http;
      this.http = fillAgent(tls);
      void old.close().catch(() => {});
    }
    if (this.state === 'waiting-for-window' && this.timer !== undefined && !this.running && !this.stopped) {
      this.opts.clock.clearTimeout(this.timer);
      this.start();
    }
  }

  /** Loads what earlier passes verified. Call after the disk tier is open. */
  async open(): Promise<void> {
    try {
      const doc = JSON.parse(await readFile(this.statePath, 'utf8')) as FillStateDoc;
      if (doc.version === 1 && doc.verified && typeof doc.verified === 'object') {
        this.verified = new Map(Object.entries(doc.verified).filter(([, v]) => typeof v === 'string'));
        const prefixes = doc.prefixes && typeof doc.prefixes === 'object' ? Object.entries(doc.prefixes) : [];
        this.prefixes = new Map(prefixes.filter(([k, v]) => this.verified.has(k) && Number.isSafeInteger(v) && v > 0));
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.opts.logger.warn({ err: (err as Error).message }, 'fill state unreadable, starting afresh');
    }
    // Verified files keep their pins across restarts even before the manifest is fetched again.
    for (const key of this.verified.keys()) {
      const end = this.prefixes.get(key);
      if (end === undefined) {
        if (this.wholeOnDisk(key)) this.opts.disk.pin(key);
      } else {
        const n = sliceCount(end, this.opts.edge.sliceBytes);
        if (this.prefixOnDisk(key, n)) this.opts.disk.pin(key, n);
      }
    }
  }

  /** Runs passes by itself: whenever the window is open, and polls the manifest every pollIntervalMs. */
  start(): void {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      const now = this.opts.clock.now();
      if (inWindow(this.window, now)) {
        this.runOnce({ force: false })
          .catch((err) => this.opts.logger.error({ err: (err as Error).message }, 'fill pass failed'))
          .finally(() => {
            if (!this.stopped) this.timer = this.opts.clock.setTimeout(tick, this.opts.edge.fill.pollIntervalMs);
          });
      } else {
        this.state = 'waiting-for-window';
        const wait = Math.min(nextWindowStart(this.window, now) - now, this.opts.edge.fill.pollIntervalMs);
        this.timer = this.opts.clock.setTimeout(tick, Math.max(1000, wait));
      }
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.opts.clock.clearTimeout(this.timer);
    await this.running?.catch(() => {});
    await this.http.close().catch(() => {});
  }

  /** One pass over the manifest; `force` ignores the window (`reelcdn fill --now`, POST /fill). */
  runOnce({ force }: { force: boolean }): Promise<FillProgress> {
    if (!this.running) {
      this.running = this.pass(force).finally(() => {
        this.running = undefined;
      });
    }
    return this.running;
  }

  get isRunning(): boolean {
    return this.running !== undefined;
  }

  private async pass(force: boolean): Promise<FillProgress> {
    const clock = this.opts.clock;
    const manifest = await this.fetchManifest();
    this.applyPins(manifest);
    this.state = 'filling';
    this.startedAt = clock.now();
    this.startedMono = clock.monotonic();
    this.finishedAt = undefined;
    this.finishedMono = undefined;
    this.fetched = 0;
    this.bySource = {};
    this.errors = [];
    this.files = new Map(
      manifest.files.map((f) => [
        objectKey(f.title, f.file),
        { title: f.title, file: f.file, size: placedBytes(f), status: 'pending' as FileFillStatus, bytesDone: 0 },
      ]),
    );
    this.opts.logger.info({ version: manifest.version, files: manifest.files.length, bytes: manifest.bytes, force }, 'fill pass started');
    const checkWindow = () => {
      // A node being stopped (SIGTERM drain) ends the pass at the next slice, not hours later.
      if (this.stopped) throw new WindowClosed();
      if (!force && !inWindow(this.window, clock.now())) throw new WindowClosed();
    };
    try {
      const deferred: FillFile[] = [];
      for (const f of [...manifest.files].sort((a, b) => a.rank - b.rank)) {
        checkWindow();
        if ((await this.fillFile(f, false, checkWindow)) === 'deferred') deferred.push(f);
      }
      // Deferred files wait for their peer to finish them, then fall back to the origin.
      const deadline = clock.monotonic() + (this.opts.peerWaitMs ?? 10 * 60_000);
      while (deferred.length > 0) {
        checkWindow();
        const fallback = clock.monotonic() >= deadline;
        for (const f of deferred.splice(0)) {
          if ((await this.fillFile(f, fallback, checkWindow)) === 'deferred') deferred.push(f);
        }
        if (deferred.length > 0) await this.sleep(2_000);
      }
    } catch (err) {
      if (!(err instanceof WindowClosed)) throw err;
      this.opts.logger.info('fill window closed, pass paused; staged slices are kept');
    } finally {
      this.state = 'idle';
      this.finishedAt = clock.now();
      this.finishedMono = clock.monotonic();
    }
    const p = this.progress();
    this.opts.logger.info({ done: p.files.done, failed: p.files.failed, bytes: p.bytes.fetched, bySource: p.bySource }, 'fill pass ended');
    return p;
  }

  private async fetchManifest(): Promise<FillManifest> {
    const url = `${this.opts.config.origin.adminUrl}/v1/manifests/${encodeURIComponent(this.opts.edge.id)}`;
    const res = await request(url, {
      dispatcher: this.http,
      headers: { authorization: `Bearer ${this.opts.adminToken ?? ''}`, ...(this.manifest ? { 'if-none-match': `"${this.manifest.version}"` } : {}) },
    });
    if (res.statusCode === 304 && this.manifest) {
      await res.body.dump();
      return this.manifest;
    }
    if (res.statusCode !== 200) {
      const text = (await res.body.text()).slice(0, 200);
      throw new Error(`origin answered ${res.statusCode} for the fill manifest: ${text.trim()}`);
    }
    const m = (await res.body.json()) as FillManifest;
    if (!m || !Array.isArray(m.files) || typeof m.version !== 'string') throw new Error('origin sent a malformed fill manifest');
    this.manifest = m;
    return m;
  }

  /** Pins what the manifest holds (once verified) and unpins what left it — kept as cache. */
  private applyPins(manifest: FillManifest): void {
    const wanted = new Set(manifest.files.map((f) => objectKey(f.title, f.file)));
    let changed = false;
    for (const key of [...this.verified.keys()]) {
      if (wanted.has(key)) continue;
      this.opts.disk.unpin(key);
      this.verified.delete(key);
      this.prefixes.delete(key);
      changed = true;
    }
    if (changed) void this.saveState();
  }

  private wholeOnDisk(key: string, size?: number): boolean {
    const meta = this.opts.disk.meta(key);
    const n = sliceCount(size ?? meta?.size ?? 0, this.opts.edge.sliceBytes);
    return meta !== undefined && (size === undefined || meta.size === size) && this.opts.disk.sliceIndexes(key).length === n;
  }

  /** Slices 0..n-1 of `key` are all on disk (in the cache, not staging). */
  private prefixOnDisk(key: string, n: number): boolean {
    const have = new Set(this.opts.disk.sliceIndexes(key));
    for (let i = 0; i < n; i++) if (!have.has(i)) return false;
    return this.opts.disk.meta(key) !== undefined;
  }

  /** This node holds what the manifest asks of the file: verified, on disk, pinned as far as it asks. */
  private holds(f: FillFile): boolean {
    const key = objectKey(f.title, f.file);
    if (this.verified.get(key) !== f.sha256) return false;
    const end = this.prefixes.get(key);
    if (!f.range) return end === undefined && this.wholeOnDisk(key, f.size);
    const n = sliceCount(f.range.end, this.opts.edge.sliceBytes);
    return (end === undefined || end >= f.range.end) && this.opts.disk.meta(key)?.size === f.size && this.prefixOnDisk(key, n);
  }

  private async fillFile(f: FillFile, allowOriginFallback: boolean, checkWindow: () => void): Promise<'done' | 'failed' | 'deferred'> {
    if (f.range) return this.fillPrefix(f, allowOriginFallback, checkWindow);
    const key = objectKey(f.title, f.file);
    const p = this.files.get(key)!;
    if (this.verified.get(key) === f.sha256 && !this.prefixes.has(key) && this.wholeOnDisk(key, f.size)) {
      this.opts.disk.pin(key);
      p.status = 'done';
      p.bytesDone = f.size;
      p.source = 'already held';
      return 'done';
    }
    // Clients may have cached the whole file already: verify it in place.
    if (this.wholeOnDisk(key, f.size) && (await this.hashOf(key, f.size, 'cache')) === f.sha256) {
      this.opts.disk.pin(key);
      await this.markVerified(key, f.sha256);
      p.status = 'done';
      p.bytesDone = f.size;
      p.source = 'cache';
      return 'done';
    }

    const peers = f.sources.filter((s) => s.kind === 'peer');
    let peerNotReady = false;
    for (const source of f.sources) {
      if (source.kind === 'origin' && peerNotReady && !allowOriginFallback) {
        p.status = 'deferred';
        return 'deferred';
      }
      p.status = 'fetching';
      p.source = source.id;
      const outcome = await this.fetchFrom(f, key, source, p, checkWindow);
      if (outcome.kind === 'not-available') {
        peerNotReady = true;
        continue;
      }
      if (outcome.kind === 'error') {
        this.noteError(`${f.title}/${f.file} from ${source.id}: ${outcome.error}`);
        continue;
      }
      const hash = await this.hashOf(key, f.size, 'staging');
      if (hash !== f.sha256) {
        // Never published, never served: drop it and try the next source.
        this.opts.disk.dropStaged(key);
        p.bytesDone = 0;
        this.noteError(`${f.title}/${f.file} from ${source.id}: sha256 mismatch (got ${hash?.slice(0, 12)}…, want ${f.sha256.slice(0, 12)}…)`);
        continue;
      }
      await this.opts.disk.publish(key);
      this.opts.onPublished?.(key);
      await this.markVerified(key, f.sha256);
      p.status = 'done';
      p.error = undefined;
      return 'done';
    }
    if (peers.length > 0 && peerNotReady && !allowOriginFallback) {
      p.status = 'deferred';
      return 'deferred';
    }
    p.status = 'failed';
    p.error = this.errors[this.errors.length - 1];
    return 'failed';
  }

  /**
   * Fetches the slices of `f` not yet staged — every slice, or `only` those given (a prefix's
   * missing ones) — into staging. With `digests`, each slice is checked against its digest as it
   * arrives and never staged if it does not match.
   */
  private async fetchFrom(
    f: FillFile,
    key: string,
    source: FillSource,
    p: FileProgress,
    checkWindow: () => void,
    only?: readonly number[],
    digests?: readonly string[],
  ): Promise<FetchOutcome> {
    const sliceBytes = this.opts.edge.sliceBytes;
    const indexes = only ?? Array.from({ length: sliceCount(f.size, sliceBytes) }, (_, i) => i);
    let meta = this.opts.disk.stagedMeta(key);
    if (meta && meta.size !== f.size) {
      this.opts.disk.dropStaged(key);
      meta = undefined;
    }
    const have = new Set(meta ? this.opts.disk.stagedSlices(key, meta) : []);
    if (!only) p.bytesDone = [...have].reduce((s, i) => s + (sliceBounds(i, sliceBytes, f.size).end - sliceBounds(i, sliceBytes, f.size).start), 0);
    for (let at = 0; at < indexes.length; at++) {
      const index = indexes[at]!;
      if (have.has(index)) continue;
      checkWindow();
      while (this.opts.busy?.()) await this.sleep(100);
      const b = sliceBounds(index, sliceBytes, f.size);
      await this.limiter.take(b.end - b.start);
      let res;
      try {
        res = await request(this.urlFor(source, f), {
          dispatcher: this.http,
          headers: {
            range: `bytes=${b.start}-${b.end - 1}`,
            // A peer answers only from its cache (RFC 9111 only-if-cached): it never goes upstream for us.
            ...(source.kind === 'peer' ? { 'cache-control': 'only-if-cached' } : {}),
          },
        });
      } catch (err) {
        return { kind: 'error', error: (err as Error).message };
      }
      if (source.kind === 'peer' && (res.statusCode === 504 || res.statusCode === 404)) {
        await res.body.dump();
        return { kind: 'not-available' };
      }
      if (res.statusCode !== 206) {
        await res.body.dump();
        return { kind: 'error', error: `answered ${res.statusCode}` };
      }
      const cr = parseContentRange(String(res.headers['content-range'] ?? ''));
      if (!cr || 'unsatisfied' in cr || cr.start !== b.start || cr.end !== b.end || cr.size !== f.size) {
        await res.body.dump();
        return { kind: 'error', error: `wrong Content-Range ${String(res.headers['content-range'])}` };
      }
      const sliceMeta: StoredMeta = {
        size: f.size,
        contentType: String(res.headers['content-type'] ?? 'application/octet-stream'),
        etag: res.headers.etag as string | undefined,
        lastModified: res.headers['last-modified'] as string | undefined,
        cacheControl: res.headers['cache-control'] as string | undefined,
        storedAt: this.opts.clock.now(),
      };
      let data: Buffer;
      try {
        data = Buffer.from(await res.body.arrayBuffer());
      } catch (err) {
        return { kind: 'error', error: `body: ${(err as Error).message}` };
      }
      if (data.length !== b.end - b.start) return { kind: 'error', error: `short body (${data.length} of ${b.end - b.start})` };
      if (meta && (meta.etag !== sliceMeta.etag || meta.lastModified !== sliceMeta.lastModified)) {
        // Another representation than the staged slices: start the file over with this one.
        this.opts.disk.dropStaged(key);
        have.clear();
        p.bytesDone = 0;
        meta = sliceMeta;
        at = -1;
        continue;
      }
      if (digests && createHash('sha256').update(data).digest('hex') !== digests[index]) {
        return { kind: 'error', error: `slice ${index} does not match its digest` };
      }
      meta = meta ?? sliceMeta;
      try {
        if (!(await this.opts.disk.writeStaged(key, index, meta, data))) return { kind: 'error', error: 'no room on disk (pinned content fills it)' };
      } catch (err) {
        return { kind: 'error', error: `disk: ${(err as Error).message}` };
      }
      p.bytesDone += data.length;
      this.fetched += data.length;
      this.bySource[source.id] = (this.bySource[source.id] ?? 0) + data.length;
      this.opts.onBytes?.(source.kind, data.length);
    }
    return { kind: 'ok' };
  }

  /**
   * A prefix of the file (FillFile.range): its slices — those already on disk (clients' misses
   * cached them) checked in place against their digests, the others fetched and checked as they
   * arrive — published and pinned; the rest of the file stays cache, filled on demand.
   */
  private async fillPrefix(f: FillFile, allowOriginFallback: boolean, checkWindow: () => void): Promise<'done' | 'failed' | 'deferred'> {
    const key = objectKey(f.title, f.file);
    const p = this.files.get(key)!;
    const r = f.range!;
    const sliceBytes = this.opts.edge.sliceBytes;
    const n = sliceCount(r.end, sliceBytes);
    const fail = (why: string): 'failed' => {
      this.noteError(`${f.title}/${f.file}: ${why}`);
      p.status = 'failed';
      p.error = this.errors[this.errors.length - 1];
      return 'failed';
    };
    if (r.sliceBytes !== sliceBytes) return fail(`the manifest's slices are ${r.sliceBytes} bytes, this node's ${sliceBytes}`);
    if (!(r.end > 0 && r.end <= f.size) || (r.end !== f.size && r.end % sliceBytes !== 0)) return fail(`range end ${r.end} is not a slice boundary of a ${f.size}-byte file`);
    if (!Array.isArray(r.sliceSha256) || r.sliceSha256.length !== n) return fail(`${r.sliceSha256?.length ?? 0} slice digests for ${n} slices`);
    const done = async (source: string): Promise<'done'> => {
      this.opts.disk.pin(key, n);
      this.verified.set(key, f.sha256);
      this.prefixes.set(key, r.end);
      await this.saveState();
      p.status = 'done';
      p.error = undefined;
      p.bytesDone = r.end;
      p.source = source;
      return 'done';
    };
    if (this.holds(f) || (this.verified.get(key) === f.sha256 && !this.prefixes.has(key) && this.wholeOnDisk(key, f.size))) return done('already held');

    // Slices clients already pulled into the cache count if they match their digests.
    const meta = this.opts.disk.meta(key);
    const missing: number[] = [];
    if (meta && meta.size !== f.size) this.opts.disk.purge(key);
    for (let i = 0; i < n; i++) {
      const buf = meta && meta.size === f.size ? await this.opts.disk.read(key, i) : undefined;
      if (!buf || createHash('sha256').update(buf).digest('hex') !== r.sliceSha256[i]) missing.push(i);
    }
    if (missing.length === 0) {
      this.opts.onPublished?.(key);
      return done('cache');
    }

    let peerNotReady = false;
    for (const source of f.sources) {
      if (source.kind === 'origin' && peerNotReady && !allowOriginFallback) {
        p.status = 'deferred';
        return 'deferred';
      }
      p.status = 'fetching';
      p.source = source.id;
      p.bytesDone = (n - missing.length) * sliceBytes;
      const outcome = await this.fetchFrom(f, key, source, p, checkWindow, missing, r.sliceSha256);
      if (outcome.kind === 'not-available') {
        peerNotReady = true;
        continue;
      }
      if (outcome.kind === 'error') {
        this.opts.disk.dropStaged(key);
        this.noteError(`${f.title}/${f.file} from ${source.id}: ${outcome.error}`);
        continue;
      }
      // Slices staged by an earlier pass were not checked as they arrived: check every one now.
      let bad: number | undefined;
      for (const i of missing) {
        const buf = await this.opts.disk.readStaged(key, i);
        if (!buf || createHash('sha256').update(buf).digest('hex') !== r.sliceSha256[i]) {
          bad = i;
          break;
        }
      }
      if (bad !== undefined) {
        this.opts.disk.dropStaged(key);
        this.noteError(`${f.title}/${f.file} from ${source.id}: slice ${bad} does not match its digest`);
        continue;
      }
      await this.opts.disk.publish(key, n);
      this.opts.onPublished?.(key);
      // Publishing another representation than the cached slices replaced them: refetched next pass.
      if (!this.prefixOnDisk(key, n)) return fail('the cached slices were of another version; the rest is fetched next pass');
      return done(source.id);
    }
    if (peerNotReady && !allowOriginFallback) {
      p.status = 'deferred';
      return 'deferred';
    }
    p.status = 'failed';
    p.error = this.errors[this.errors.length - 1];
    return 'failed';
  }

  private urlFor(source: FillSource, f: FillFile): string {
    const base = source.url.replace(/\/+$/, '');
    const s = this.opts.config.signing;
    // The origin serves edges only: a short token, the request leaves now (origin-signing.ts).
    if (source.kind === 'origin') return `${base}${signedOriginPath(s, f.title, f.file, this.opts.clock.now() / 1000)}`;
    const path = `/c/${f.title}/${f.file}`;
    return `${base}${path}?${signQuery(s.keys, s.activeKey, path, this.opts.clock.now() / 1000, s.ttlSeconds)}`;
  }

  private async hashOf(key: string, size: number, area: 'cache' | 'staging'): Promise<string | undefined> {
    const h = createHash('sha256');
    const n = sliceCount(size, this.opts.edge.sliceBytes);
    for (let i = 0; i < n; i++) {
      const buf = area === 'cache' ? await this.opts.disk.read(key, i) : await this.opts.disk.readStaged(key, i);
      if (!buf) return undefined;
      h.update(buf);
    }
    return h.digest('hex');
  }

  private async markVerified(key: string, sha256: string): Promise<void> {
    this.verified.set(key, sha256);
    this.prefixes.delete(key);
    await this.saveState();
  }

  private async saveState(): Promise<void> {
    const doc: FillStateDoc = { version: 1, verified: Object.fromEntries(this.verified), prefixes: Object.fromEntries(this.prefixes) };
    await writeFileAtomic(this.statePath, JSON.stringify(doc)).catch((err) =>
      this.opts.logger.error({ err: (err as Error).message }, 'cannot save fill state'),
    );
  }

  private noteError(message: string): void {
    this.opts.logger.warn({ err: message }, 'fill error');
    this.errors.push(message);
    if (this.errors.length > 50) this.errors.shift();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.opts.clock.setTimeout(resolve, ms));
  }

  /** Titles whose every manifest file is verified and on disk: steering ranks this node first for them. */
  heldTitles(): string[] {
    if (!this.manifest) return [];
    const complete = new Map<string, boolean>();
    for (const f of this.manifest.files) complete.set(f.title, (complete.get(f.title) ?? true) && this.holds(f));
    return [...complete].filter(([, ok]) => ok).map(([t]) => t);
  }

  progress(): FillProgress {
    const now = this.opts.clock.now();
    const files = [...this.files.values()];
    const mono = this.opts.clock.monotonic();
    const elapsed = ((this.finishedMono ?? mono) - (this.startedMono ?? mono)) / 1000;
    return {
      state: this.state,
      manifestVersion: this.manifest?.version,
      window: this.opts.edge.fill.window,
      timezone: this.opts.edge.timezone,
      windowOpen: inWindow(this.window, now),
      nextWindowStart: new Date(nextWindowStart(this.window, now)).toISOString(),
      files: {
        total: files.length,
        done: files.filter((f) => f.status === 'done').length,
        failed: files.filter((f) => f.status === 'failed').length,
        deferred: files.filter((f) => f.status === 'deferred').length,
      },
      bytes: { total: files.reduce((s, f) => s + f.size, 0), done: files.reduce((s, f) => s + f.bytesDone, 0), fetched: this.fetched },
      rateBytesPerSec: elapsed > 0 ? this.fetched / elapsed : 0,
      bySource: { ...this.bySource },
      startedAt: this.startedAt === undefined ? undefined : new Date(this.startedAt).toISOString(),
      finishedAt: this.finishedAt === undefined ? undefined : new Date(this.finishedAt).toISOString(),
      heldTitles: this.heldTitles(),
      errors: [...this.errors],
      perFile: files.slice(0, 500),
    };
  }
}
