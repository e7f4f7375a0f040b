/**
 * The chaos run's clients: each plays titles through steering as a player would — HLS through
 * the multivariant and per-pathway media playlists, DASH through the MPD's BaseURLs, or single
 * files through /v1/locate — and on an error moves to the next URL. Every answer's bytes are
 * compared with the exact byte range of the source file.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Dispatcher, request } from 'undici';
import type { AttemptError, CacheView, EtagBook, Tally, Want } from './chaos-ledger.js';

/**
 * The source files, as ingested: what every answer must equal. A re-ingested title has two
 * versions of each media file (same size); an answer must equal one of them from its first byte
 * to its last — a body that is part one version and part the other is wrong.
 */
export class SourceMedia {
  private readonly files = new Map<string, Buffer[]>();
  readonly titles = new Map<string, string[]>();

  constructor(fixtures: string, titles: Record<string, string>, variant?: { title: string; bytes: (original: Buffer) => Buffer }) {
    for (const [folder, title] of Object.entries(titles)) {
      const names = readdirSync(join(fixtures, folder)).sort();
      this.titles.set(title, names);
      for (const n of names) {
        const original = readFileSync(join(fixtures, folder, n));
        const media = !n.endsWith('.m3u8') && !n.endsWith('.mpd');
        this.files.set(JSON.stringify([title, n]), variant?.title === title && media ? [original, variant.bytes(original)] : [original]);
      }
    }
  }

  /** The first version (every version has its size). */
  bytes(title: string, file: string): Buffer | undefined {
    return this.files.get(JSON.stringify([title, file]))?.[0];
  }

  versions(title: string, file: string): Buffer[] {
    return this.files.get(JSON.stringify([title, file])) ?? [];
  }

  /** Media files of a title (not manifests). */
  media(title: string): string[] {
    return (this.titles.get(title) ?? []).filter((f) => !f.endsWith('.m3u8') && !f.endsWith('.mpd'));
  }
}

export interface PlayerContext {
  steeringUrl: string;
  source: SourceMedia;
  view: CacheView;
  tally: Tally;
  etags: EtagBook;
  dispatcher: Dispatcher;
  /** Edge id by URL origin (scheme://host:port). */
  edgeByOrigin: Map<string, string>;
  rng: () => number;
  elapsed(): number;
  /** The faults in force now, for failure records. */
  faults(): string;
  running(): boolean;
  /** Per attempt: a player gives up on a URL after this long without headers or body bytes. */
  attemptTimeoutMs: number;
}

interface Candidate {
  edge: string;
  url: string;
}

type AttemptResult = { kind: 'ok'; status: number; variant: boolean } | { kind: 'wrong'; status: number; xCache: string; detail: string; bytes: number } | { kind: 'error'; cause: string };

const causeOf = (err: unknown) => {
  const e = err as { code?: string; name?: string; message?: string };
  return e.code ?? e.name ?? String(e.message);
};

/** A status line that groups alike: digits folded, one line, short. */
const reasonOf = (status: number, text: string) => `${status} ${text.split('\n')[0]!.replace(/\d+/g, 'N').slice(0, 80)}`;

/** GET one URL for `want` and check the bytes against the source. */
async function attempt(ctx: PlayerContext, url: string, want: Want): Promise<AttemptResult> {
  const src = ctx.source.bytes(want.title, want.file);
  if (!src) return { kind: 'error', cause: `test bug: no source for ${want.title}/${want.file}` };
  const whole = want.start === 0 && want.end === src.length;
  const headers: Record<string, string> = whole ? {} : { range: `bytes=${want.start}-${want.end - 1}` };
  let res;
  try {
    res = await request(url, { dispatcher: ctx.dispatcher, headers, headersTimeout: ctx.attemptTimeoutMs, bodyTimeout: ctx.attemptTimeoutMs });
  } catch (err) {
    return { kind: 'error', cause: causeOf(err) };
  }
  let body: Buffer;
  try {
    body = Buffer.from(await res.body.arrayBuffer());
  } catch (err) {
    // A cut connection mid-body is how an edge refuses to splice versions: an error, not wrong bytes.
    return { kind: 'error', cause: `${res.statusCode} body: ${causeOf(err)}` };
  }
  const xCache = String(res.headers['x-cache'] ?? '');
  if (res.statusCode >= 300) return { kind: 'error', cause: reasonOf(res.statusCode, body.toString('utf8')) };
  let range: [number, number];
  if (res.statusCode === 200) {
    range = [0, src.length];
  } else if (res.statusCode === 206) {
    const cr = String(res.headers['content-range'] ?? '');
    if (cr !== `bytes ${want.start}-${want.end - 1}/${src.length}`) {
      return { kind: 'wrong', status: 206, xCache, detail: `Content-Range "${cr}", asked ${want.start}-${want.end - 1}/${src.length}`, bytes: body.length };
    }
    range = [want.start, want.end];
  } else {
    return { kind: 'error', cause: reasonOf(res.statusCode, '') };
  }
  const versions = ctx.source.versions(want.title, want.file).map((v) => v.subarray(...range));
  const matches = versions.flatMap((v, i) => (body.equals(v) ? [i] : []));
  const etag = res.headers.etag;
  if (matches.length === 1 && typeof etag === 'string') {
    // Only a body that tells the versions apart says which one its ETag names.
    const conflict = ctx.etags.note(want.title, want.file, etag, matches[0]!);
    if (conflict) return { kind: 'wrong', status: res.statusCode, xCache, detail: conflict, bytes: body.length };
  }
  if (matches.length > 0) return { kind: 'ok', status: res.statusCode, variant: matches[0]! > 0 };
  // Against each version: how many bytes differ and where the first is (a splice shows as a
  // body that matches one version up to an offset and the other after it).
  const diffs = versions.map((expected) => {
    let first = 0;
    while (first < Math.min(body.length, expected.length) && body[first] === expected[first]) first++;
    let differing = Math.abs(body.length - expected.length);
    for (let i = first; i < Math.min(body.length, expected.length); i++) if (body[i] !== expected[i]) differing++;
    return { first: range[0] + first, differing, length: expected.length };
  });
  const against = diffs.map((d, i) => `version ${'ab'[i]}: ${d.differing} bytes differ from file offset ${d.first}`).join('; ');
  return {
    kind: 'wrong',
    status: res.statusCode,
    xCache,
    detail: `${body.length} bytes (expected ${diffs[0]!.length}); ${against}; etag ${String(res.headers.etag)}`,
    bytes: Math.min(...diffs.map((d) => d.differing)),
  };
}

/**
 * One media request as a player makes it: each candidate URL in turn until one answers with
 * the right bytes. Candidates come lazily (the next pathway's playlist is fetched only if needed).
 */
async function fetchMedia(ctx: PlayerContext, want: Want, candidates: AsyncIterable<Candidate>): Promise<void> {
  const started = performance.now();
  const holders = ctx.view.holders(want);
  const attempts: AttemptError[] = [];
  const fail = (e: AttemptError) => {
    attempts.push(e);
    ctx.tally.attemptFailed(e, () => `at ${(ctx.elapsed() / 1000).toFixed(1)} s, ${want.title}/${want.file} bytes ${want.start}-${want.end - 1} [faults: ${ctx.faults()}]`);
  };
  try {
    for await (const c of candidates) {
      const stamp = ctx.view.stamp(c.edge, want.title);
      const r = await attempt(ctx, c.url, want);
      if (r.kind === 'ok') {
        ctx.view.noteServed(want, stamp);
        ctx.tally.ok++;
        if (attempts.length > 0) ctx.tally.okAfterFailover++;
        if (r.variant) ctx.tally.okVariant++;
        return;
      }
      if (r.kind === 'wrong') {
        // A player cannot tell: it would play these bytes.
        ctx.tally.wrongAnswers.push({ atMs: ctx.elapsed(), edge: c.edge, want, status: r.status, xCache: r.xCache, detail: r.detail, faults: ctx.faults() });
        ctx.tally.wrongBytes += r.bytes;
        return;
      }
      fail({ who: c.edge, cause: r.cause });
    }
  } catch (err) {
    // steeringGet counted it already.
    attempts.push({ who: 'steering', cause: (err as Error).message.replace(/^steering /, '') });
  } finally {
    ctx.tally.finished(performance.now() - started);
  }
  if (attempts.length === 0 && !ctx.running()) return;
  const heldBy = ctx.view.stillHolding(want, holders);
  const f = { atMs: ctx.elapsed(), want, heldBy, attempts, faults: ctx.faults() };
  (heldBy.length > 0 ? ctx.tally.failedCached : ctx.tally.failedUncached).push(f);
}

/** GET a steering document (playlist, MPD, steering manifest, locate); throws with the cause. */
async function steeringGet(ctx: PlayerContext, url: string, what: string): Promise<string> {
  ctx.tally.manifestRequests++;
  try {
    const res = await request(url, { dispatcher: ctx.dispatcher, headersTimeout: ctx.attemptTimeoutMs, bodyTimeout: ctx.attemptTimeoutMs });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`steering ${reasonOf(res.statusCode, text)}`);
    return text;
  } catch (err) {
    const cause = (err as Error).message.startsWith('steering ') ? (err as Error).message : `steering ${causeOf(err)}`;
    ctx.tally.manifestFailures.push({ atMs: ctx.elapsed(), what, cause, faults: ctx.faults() });
    ctx.tally.attemptFailed({ who: 'steering', cause: cause.slice('steering '.length) });
    throw new Error(cause);
  }
}

function wantOf(ctx: PlayerContext, url: string, range?: { start: number; end: number }): Want {
  const path = new URL(url).pathname;
  const m = /^\/c\/([^/]+)\/(.+)$/.exec(path);
  if (!m) throw new Error(`steering emitted a URL that is not an edge object URL: ${url}`);
  const title = decodeURIComponent(m[1]!);
  const file = decodeURIComponent(m[2]!);
  const size = ctx.source.bytes(title, file)?.length ?? 0;
  return { title, file, start: range?.start ?? 0, end: range?.end ?? size };
}

function edgeOf(ctx: PlayerContext, url: string): string {
  return ctx.edgeByOrigin.get(new URL(url).origin) ?? `unknown host ${new URL(url).host}`;
}

/** The pathway (HLS) / service location (DASH) priority, re-read at most once a TTL as players do. */
class SteeringPoll {
  private order: string[] = [];
  private at = -Infinity;
  constructor(
    private readonly ctx: PlayerContext,
    private readonly title: string,
    private readonly field: 'PATHWAY-PRIORITY' | 'SERVICE-LOCATION-PRIORITY',
  ) {}

  async priority(fallback: string[]): Promise<string[]> {
    if (performance.now() - this.at >= 1000) {
      this.at = performance.now();
      try {
        const doc = JSON.parse(await steeringGet(this.ctx, `${this.ctx.steeringUrl}/v1/steer/${this.title}.json`, `steer ${this.title}`)) as Record<string, string[]>;
        this.order = doc[this.field] ?? [];
      } catch {
        // A player keeps its last priority when the steering server does not answer.
      }
    }
    const known = this.order.filter((p) => fallback.includes(p));
    return [...known, ...fallback.filter((p) => !known.includes(p))];
  }
}

interface PlaylistEntry {
  url: string;
  start?: number;
  end?: number;
}

/** Entries of an HLS media playlist: the EXT-X-MAP, then each segment (with its byte range if any). */
export function parseMediaPlaylist(text: string): PlaylistEntry[] {
  const out: PlaylistEntry[] = [];
  let range: { start: number; end: number } | undefined;
  const br = (s: string) => {
    const [n, o] = s.split('@').map(Number);
    return { start: o!, end: o! + n! };
  };
  for (const line of text.split('\n').map((l) => l.trim())) {
    const map = /^#EXT-X-MAP:URI="([^"]+)"(?:,BYTERANGE="([^"]+)")?/.exec(line);
    if (map) out.push({ url: map[1]!, ...(map[2] ? br(map[2]) : {}) });
    else if (line.startsWith('#EXT-X-BYTERANGE:')) range = br(line.slice('#EXT-X-BYTERANGE:'.length));
    else if (line && !line.startsWith('#')) {
      out.push({ url: line, ...(range ?? {}) });
      range = undefined;
    }
  }
  return out;
}

async function playHls(ctx: PlayerContext, title: string): Promise<void> {
  const master = await steeringGet(ctx, `${ctx.steeringUrl}/v1/play/${title}/master.m3u8`, `${title} master`);
  const variants = new Map<string, Map<string, string>>(); // file → pathway → playlist URL
  for (const line of master.split('\n')) {
    if (!line.startsWith('http')) continue;
    const u = new URL(line);
    const file = u.pathname.split('/').pop()!;
    const pathway = u.searchParams.get('pathway') ?? '';
    if (!variants.has(file)) variants.set(file, new Map());
    variants.get(file)!.set(pathway, line);
  }
  const files = [...variants.keys()];
  if (files.length === 0) throw new Error(`${title}: multivariant playlist has no variants`);
  const byPathway = variants.get(files[Math.floor(ctx.rng() * files.length)]!)!;
  const pathways = [...byPathway.keys()];
  const poll = new SteeringPoll(ctx, title, 'PATHWAY-PRIORITY');
  const playlists = new Map<string, PlaylistEntry[]>();
  const playlist = async (p: string) => {
    let entries = playlists.get(p);
    if (!entries) playlists.set(p, (entries = parseMediaPlaylist(await steeringGet(ctx, byPathway.get(p)!, `${title} media playlist ${p}`))));
    return entries;
  };
  const first = await playlist((await poll.priority(pathways))[0]!);
  for (let i = 0; i < first.length && ctx.running(); i++) {
    const e = first[i]!;
    const want = wantOf(ctx, e.url, e.start !== undefined ? { start: e.start, end: e.end! } : undefined);
    const order = await poll.priority(pathways);
    async function* candidates(): AsyncIterable<Candidate> {
      for (const p of order) {
        let entries: PlaylistEntry[];
        try {
          entries = await playlist(p);
        } catch {
          continue; // already counted; the next pathway
        }
        const entry = entries[i];
        if (entry) yield { edge: edgeOf(ctx, entry.url), url: entry.url };
      }
    }
    await fetchMedia(ctx, want, candidates());
    await think(ctx);
  }
}

const unescapeXml = (s: string) => s.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'");

async function playDash(ctx: PlayerContext, title: string): Promise<void> {
  const mpd = await steeringGet(ctx, `${ctx.steeringUrl}/v1/play/${title}/manifest.mpd`, `${title} mpd`);
  const bases = [...mpd.matchAll(/<BaseURL\b([^>]*)>([^<]*)<\/BaseURL>/g)].map((m) => ({
    location: /serviceLocation="([^"]*)"/.exec(m[1]!)?.[1] ?? '',
    priority: Number(/dvb:priority="(\d+)"/.exec(m[1]!)?.[1] ?? 0),
    url: unescapeXml(m[2]!.trim()),
  }));
  bases.sort((a, b) => a.priority - b.priority);
  const reps = [...mpd.matchAll(/<Representation\b[^>]*>([\s\S]*?)<\/Representation>/g)].map((m) => [
    ...[...m[1]!.matchAll(/<Initialization[^>]*sourceURL="([^"]+)"/g)].map((x) => unescapeXml(x[1]!)),
    ...[...m[1]!.matchAll(/<SegmentURL[^>]*media="([^"]+)"/g)].map((x) => unescapeXml(x[1]!)),
  ]);
  if (bases.length === 0 || reps.length === 0) throw new Error(`${title}: MPD without BaseURL or SegmentList`);
  const segments = reps[Math.floor(ctx.rng() * reps.length)]!;
  const poll = new SteeringPoll(ctx, title, 'SERVICE-LOCATION-PRIORITY');
  for (const rel of segments) {
    if (!ctx.running()) return;
    const order = await poll.priority(bases.map((b) => b.location));
    const urls = order.map((loc) => new URL(rel, bases.find((b) => b.location === loc)!.url).href);
    await fetchMedia(ctx, wantOf(ctx, urls[0]!), listOf(urls.map((url) => ({ edge: edgeOf(ctx, url), url }))));
    await think(ctx);
  }
}

async function* listOf<T>(items: T[]): AsyncIterable<T> {
  yield* items;
}

/** Files through /v1/locate: whole segments in order, or a random range of any media file. */
async function playLocate(ctx: PlayerContext, title: string, randomRanges: boolean): Promise<void> {
  const files = ctx.source.media(title);
  for (let n = 0; n < files.length && ctx.running(); n++) {
    const file = randomRanges ? files[Math.floor(ctx.rng() * files.length)]! : files[n]!;
    const size = ctx.source.bytes(title, file)!.length;
    let want: Want = { title, file, start: 0, end: size };
    if (randomRanges) {
      const start = Math.floor(ctx.rng() * size);
      want = { title, file, start, end: Math.min(size, start + 1 + Math.floor(ctx.rng() * 40_000)) };
    }
    async function* candidates(): AsyncIterable<Candidate> {
      const doc = JSON.parse(await steeringGet(ctx, `${ctx.steeringUrl}/v1/locate/${title}/${file}`, `locate ${title}/${file}`)) as { urls: Candidate[] };
      yield* doc.urls;
    }
    await fetchMedia(ctx, want, candidates());
    await think(ctx);
  }
}

/** A pause between requests: a steady load, not a flood (the test shares 2 cores with the suite). */
async function think(ctx: PlayerContext): Promise<void> {
  await new Promise((r) => setTimeout(r, 20 + Math.floor(ctx.rng() * 40)));
}

/** One client: plays until the run ends. */
export async function runPlayer(ctx: PlayerContext, titles: { hls: string; segments: string; dash: string }): Promise<void> {
  while (ctx.running()) {
    const r = ctx.rng();
    try {
      if (r < 0.3) await playHls(ctx, titles.hls);
      else if (r < 0.55) await playDash(ctx, titles.dash);
      else if (r < 0.75) await playLocate(ctx, titles.segments, false);
      else await playLocate(ctx, [titles.hls, titles.segments, titles.dash][Math.floor(ctx.rng() * 3)]!, true);
    } catch {
      // A manifest failed (counted): a player would start over.
      await new Promise((res) => setTimeout(res, 200));
    }
  }
}
