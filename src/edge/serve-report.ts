import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Agent, request } from 'undici';
import type { Clock, TimerHandle } from '../common/clock.js';
import type { ClusterConfig, EdgeConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import { parseObjectPath } from '../common/paths.js';
import { playIdOfUrl } from '../common/play-id.js';
import { parseContentRange } from '../common/range.js';
import { type ClientTls, connectFor } from '../common/tls.js';
import { EDGE_HOP_HEADER, REPORT_PATH, REPORT_SIGNATURE_HEADER, type ServeReport, type ServedTitle, signReport } from '../common/serve-report-wire.js';

/**
 * What this edge served its clients, per title and file — request counts, body bytes and, for
 * files of several slices, bytes per slice — reported to the origin every minute
 * (`POST /v1/served`, file-weights.ts), where it becomes the fill planner's file weights.
 * Peer fills (only-if-cached) and a child edge's misses (EDGE_HOP_HEADER) are not this edge's
 * clients' demand and are not counted.
 */

/** Where answers are told (the hit path and the object routes). */
export interface ServedSink {
  /**
   * A body sent: `length` bytes from `start` of a `size`-byte file (a 200 is start 0, the
   * whole size). `playId`: the play id of its URL, if any.
   */
  served(title: string, file: string, size: number, start: number, length: number, playId: string | undefined): void;
  /** `served` through a file's counters the caller keeps between answers (a hot URL): no lookups. */
  servedTo?(held: ServedFile, size: number, start: number, length: number, playId: string | undefined): void;
}

/** One file's counters as a caller keeps them (ServeTally.servedTo); valid until the tally is taken. */
export class ServedFile {
  /** The tally's round they belong to (-1: none yet). */
  round = -1;
  t: TitleTally | undefined = undefined;
  f: FileTally | undefined = undefined;

  constructor(
    readonly title: string,
    readonly file: string,
  ) {}
}

/** Files tallied between two reports, at most (the rest of a minute is not counted). */
export const MAX_TALLY_FILES = 20_000;
/**
 * Slice counts kept between two reports, at most: past it a file is counted in bytes only.
 * With MAX_TALLY_FILES this keeps a report a few MB, well under the origin's MAX_REPORT_BODY.
 */
export const MAX_TALLY_SLICES = 250_000;
/** Play ids remembered to count each play once (oldest out). */
const PLAY_IDS_KEPT = 65_536;

interface TitleTally {
  plays: number;
  files: Map<string, FileTally>;
}

interface FileTally {
  requests: number;
  bytes: number;
  slices?: number[];
  /** Counted in bytes only until the next report (the slice budget ran out). */
  whole?: boolean;
}

/** The numbers since the last report. Pure: no I/O, no clock. */
export class ServeTally implements ServedSink {
  private titles = new Map<string, TitleTally>();
  /** Counts take()s: counters a caller holds from an earlier round are no longer the tally's. */
  private round = 0;
  private files = 0;
  private sliceEntries = 0;
  private readonly playIds = new Map<string, true>();
  /** Answers not counted because the tally was full. */
  dropped = 0;

  constructor(readonly sliceBytes: number) {}

  served(title: string, file: string, size: number, start: number, length: number, playId: string | undefined): void {
    if (length <= 0 || start < 0 || start + length > size) return;
    let t = this.titles.get(title);
    let f = t?.files.get(file);
    if (!f) {
      if (this.files >= MAX_TALLY_FILES) {
        this.dropped++;
        return;
      }
      if (!t) this.titles.set(title, (t = { plays: 0, files: new Map() }));
      t.files.set(file, (f = { requests: 0, bytes: 0 }));
      this.files++;
    }
    this.count(t!, f, size, start, length, playId);
  }

  servedTo(held: ServedFile, size: number, start: number, length: number, playId: string | undefined): void {
    if (length <= 0 || start < 0 || start + length > size) return;
    if (held.round === this.round && held.f !== undefined) return this.count(held.t!, held.f, size, start, length, playId);
    this.served(held.title, held.file, size, start, length, playId);
    held.t = this.titles.get(held.title);
    held.f = held.t?.files.get(held.file);
    held.round = this.round;
  }

  private count(t: TitleTally, f: FileTally, size: number, start: number, length: number, playId: string | undefined): void {
    f.requests++;
    f.bytes += length;
    if (size > this.sliceBytes && !f.whole) {
      const end = start + length;
      const last = Math.ceil(end / this.sliceBytes);
      const grow = Math.max(0, last - (f.slices?.length ?? 0));
      if (this.sliceEntries + grow > MAX_TALLY_SLICES) {
        this.sliceEntries -= f.slices?.length ?? 0;
        delete f.slices;
        f.whole = true;
        return this.countPlay(t, playId);
      }
      this.sliceEntries += grow;
      const slices = (f.slices ??= []);
      for (let i = Math.floor(start / this.sliceBytes); i * this.sliceBytes < end; i++) {
        const from = Math.max(start, i * this.sliceBytes);
        const to = Math.min(end, (i + 1) * this.sliceBytes);
        while (slices.length <= i) slices.push(0);
        slices[i]! += to - from;
      }
    }
    this.countPlay(t, playId);
  }

  /** A play counts once, on the first body served for its id. */
  private countPlay(t: { plays: number }, playId: string | undefined): void {
    if (playId === undefined || this.playIds.has(playId)) return;
    if (this.playIds.size >= PLAY_IDS_KEPT) this.playIds.delete(this.playIds.keys().next().value!);
    this.playIds.set(playId, true);
    t.plays++;
  }

  get empty(): boolean {
    return this.titles.size === 0;
  }

  /** The numbers so far, as a report's titles; the tally starts again from zero. */
  take(): ServedTitle[] {
    const out: ServedTitle[] = [];
    for (const [title, t] of this.titles) {
      out.push({
        title,
        plays: t.plays,
        files: [...t.files].map(([file, f]) => (f.slices ? { file, requests: f.requests, bytes: f.bytes, slices: f.slices } : { file, requests: f.requests, bytes: f.bytes })),
      });
    }
    this.titles = new Map();
    this.round++;
    this.files = 0;
    this.sliceEntries = 0;
    return out;
  }

  /** Puts numbers taken back (a report that did not reach the origin goes with the next one). */
  giveBack(titles: ServedTitle[]): void {
    for (const st of titles) {
      let t = this.titles.get(st.title);
      if (!t) this.titles.set(st.title, (t = { plays: 0, files: new Map() }));
      t.plays += st.plays;
      for (const sf of st.files) {
        let f = t.files.get(sf.file);
        if (!f) {
          t.files.set(sf.file, (f = { requests: 0, bytes: 0 }));
          this.files++;
        }
        f.requests += sf.requests;
        f.bytes += sf.bytes;
        if (!sf.slices) {
          // Counted in bytes only (a small file, or the budget ran out): so is the sum from now on.
          if (f.slices) this.sliceEntries -= f.slices.length;
          delete f.slices;
          f.whole = true;
        } else if (!f.whole) {
          const slices = (f.slices ??= []);
          this.sliceEntries += Math.max(0, sf.slices.length - slices.length);
          sf.slices.forEach((b, i) => {
            while (slices.length <= i) slices.push(0);
            slices[i]! += b;
          });
        }
      }
    }
  }
}

/**
 * Counts the object routes' answers (what the hit path leaves to fastify: multipart ranges are
 * counted without their framing, as bytes of no slice in particular — they are rare).
 */
export function recordServed(publicApp: FastifyInstance, sink: ServedSink): void {
  publicApp.addHook('onResponse', async (req, reply) => {
    if (req.method !== 'GET' || (reply.statusCode !== 200 && reply.statusCode !== 206)) return;
    if (!req.url.startsWith('/c/')) return;
    if (/only-if-cached/i.test(String(req.headers['cache-control'] ?? ''))) return;
    if (req.headers[EDGE_HOP_HEADER] !== undefined) return;
    const q = req.url.indexOf('?');
    const parsed = parseObjectPath((q < 0 ? req.url : req.url.slice(0, q)).slice(3));
    if (!parsed.ok) return;
    const length = Number(reply.getHeader('content-length') ?? 0);
    let start = 0;
    let size = length;
    if (reply.statusCode === 206) {
      const cr = parseContentRange(String(reply.getHeader('content-range') ?? ''));
      if (!cr || 'unsatisfied' in cr) return;
      start = cr.start;
      size = cr.size;
    }
    sink.served(parsed.title, parsed.file, size, start, length, playIdOfUrl(req.url));
  });
}

export interface ServeReporterOptions {
  config: ClusterConfig;
  edge: EdgeConfig;
  tally: ServeTally;
  clock: Clock;
  logger: Logger;
  adminToken?: string;
  tls?: ClientTls;
  /** How often to report (ms). Default 60000. */
  intervalMs?: number;
}

/**
 * Sends the tally to the origin every `intervalMs`, signed with the cluster's active key. A
 * report the origin could not take (unreachable, 5xx) goes with the next one; one it refused
 * (4xx) is dropped and logged — sending it again would be refused again.
 */
export class ServeReporter {
  /** This process's reports: the origin accepts each (instance, seq) once. */
  readonly instance = randomBytes(9).toString('base64url');
  private seq = 0;
  private from: number;
  private timer?: TimerHandle;
  private http: Agent;
  private sending?: Promise<void>;
  private stopped = false;

  constructor(private opts: ServeReporterOptions) {
    this.from = opts.clock.now();
    this.http = reporterAgent(opts.tls);
  }

  /** Reloaded cluster file: keys, the origin's URL and trust from now on. */
  reconfigure(config: ClusterConfig, edge: EdgeConfig, tls: ClientTls | undefined): void {
    const old = this.opts.tls;
    this.opts = { ...this.opts, config, edge, tls };
    if (tls !== old) {
      const prev = this.http;
      this.http = reporterAgent(tls);
      void prev.close().catch(() => {});
    }
  }

  start(): void {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      void this.reportNow().finally(() => {
        if (!this.stopped) this.timer = this.opts.clock.setTimeout(tick, this.opts.intervalMs ?? 60_000);
      });
    };
    this.timer = this.opts.clock.setTimeout(tick, this.opts.intervalMs ?? 60_000);
  }

  /** Sends what was served since the last report (nothing when nothing was). */
  reportNow(timeoutMs = 10_000): Promise<void> {
    this.sending ??= this.send(timeoutMs).finally(() => {
      this.sending = undefined;
    });
    return this.sending;
  }

  /** Stops the timer and sends the last numbers. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.opts.clock.clearTimeout(this.timer);
    // Bounded: an origin that does not answer must not hold the node's shutdown.
    await this.reportNow(2_000).catch(() => {});
    await this.http.close().catch(() => {});
  }

  private async send(timeoutMs: number): Promise<void> {
    const { tally, clock, config, edge, logger } = this.opts;
    if (tally.empty) return;
    const to = clock.now();
    // The origin takes at most an hour per report: older numbers than that are dated as the hour's.
    const from = Math.max(this.from, to - 3_600_000 + 1000);
    const titles = tally.take();
    const report: ServeReport = { edgeId: edge.id, instance: this.instance, seq: this.seq + 1, from, to, sliceBytes: tally.sliceBytes, titles };
    const body = JSON.stringify(report);
    let status: number;
    let text = '';
    try {
      const res = await request(`${config.origin.adminUrl}${REPORT_PATH}`, {
        method: 'POST',
        dispatcher: this.http,
        headers: {
          authorization: `Bearer ${this.opts.adminToken ?? ''}`,
          'content-type': 'application/json',
          [REPORT_SIGNATURE_HEADER]: signReport(config.signing.keys, config.signing.activeKey, edge.id, body),
        },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = res.statusCode;
      text = (await res.body.text()).slice(0, 300).trim();
    } catch (err) {
      tally.giveBack(titles);
      logger.warn({ err: (err as Error).message }, 'serve report not sent; kept for the next one');
      return;
    }
    if (status >= 500 || status === 429) {
      tally.giveBack(titles);
      logger.warn({ status, text }, 'origin could not take the serve report; kept for the next one');
      return;
    }
    // Sent: whatever the answer, the next report starts where this one ended.
    this.seq++;
    this.from = to;
    if (status !== 204) logger.warn({ status, text }, 'origin refused the serve report');
  }
}

function reporterAgent(tls: ClientTls | undefined): Agent {
  return new Agent({ connections: 1, headersTimeout: 10_000, bodyTimeout: 10_000, connect: connectFor(tls, 3_000) });
}
