/**
 * The QoE bench's player: one HLS session as a small ABR client plays it. It reads the
 * multivariant playlist through steering (the first pathway steering offers, its media
 * playlists through steering, the signed edge URLs in them), picks a rendition per segment
 * (qoe-abr.ts), keeps a buffer (qoe-buffer.ts), reads every answer no faster than its bandwidth
 * cap (qoe-network.ts) and sends CMCD on every request (qoe-cmcd.ts), `nor` naming the next
 * segment of the same rendition as hls.js does. Its playback clock runs `speed` times faster
 * than real time; every figure it keeps is in media time except the requests' real durations.
 */
import { randomUUID } from 'node:crypto';
import { type Dispatcher, request } from 'undici';
import { parseAttributes } from '../src/steering/hls-rewrite.js';
import { parseMediaPlaylist } from './chaos-player.js';
import { type AbrOptions, DEFAULT_ABR, DEFAULT_ESTIMATE, ThroughputEstimate, chooseRendition } from './qoe-abr.js';
import { type BufferOptions, DEFAULT_BUFFER, Playback } from './qoe-buffer.js';
import { type RequestState, relativeNor, withCmcdQuery } from './qoe-cmcd.js';
import { type CapPlan, capAt, pacedWaitMs, realBytesPerMs } from './qoe-network.js';
import type { RequestKind, RequestRecord, SessionRecord } from './qoe-stats.js';

export interface PlayerOptions {
  player: number;
  steeringUrl: string;
  title: string;
  cap: CapPlan;
  /** Media seconds per real second. */
  speed: number;
  /** One connection pool per player (a player keeps its connections, as a browser does). */
  dispatcher: Dispatcher;
  /** Send CMCD (default true). */
  cmcd?: boolean;
  buffer?: BufferOptions;
  abr?: AbrOptions;
  /** Real milliseconds of a monotonic clock. */
  now?: () => number;
  /** Gives up on an answer after this long without progress, real ms. */
  timeoutMs?: number;
}

interface Variant {
  bandwidth: number;
  url: string;
}

interface Rendition {
  kbps: number;
  init: string | undefined;
  segments: { url: string; durationS: number }[];
}

/** The variants of the first pathway of a steered multivariant playlist, by bandwidth ascending. */
export function firstPathwayVariants(text: string): Variant[] {
  const lines = text.split('\n').map((l) => l.trim());
  const steering = lines.find((l) => l.startsWith('#EXT-X-CONTENT-STEERING:'));
  const first = steering ? /PATHWAY-ID="([^"]*)"/.exec(steering)?.[1] : undefined;
  const out: Variant[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith('#EXT-X-STREAM-INF:')) continue;
    const attrs = new Map(parseAttributes(lines[i]!.slice('#EXT-X-STREAM-INF:'.length)).map(([k, v]) => [k, v.replace(/^"|"$/g, '')]));
    const url = lines.slice(i + 1).find((l) => l !== '' && !l.startsWith('#'));
    if (!url || (first !== undefined && attrs.get('PATHWAY-ID') !== first)) continue;
    out.push({ bandwidth: Number(attrs.get('BANDWIDTH') ?? 0), url });
  }
  return out.sort((a, b) => a.bandwidth - b.bandwidth);
}

/** Segment durations of a media playlist, in order (the #EXTINF before each URI). */
export function segmentDurations(text: string): number[] {
  return [...text.matchAll(/^#EXTINF:([\d.]+)/gm)].map((m) => Number(m[1]));
}

class SessionError extends Error {}

export async function playSession(o: PlayerOptions): Promise<SessionRecord> {
  const now = o.now ?? (() => performance.now());
  const timeoutMs = o.timeoutMs ?? 20_000;
  const t0 = now();
  const media = () => ((now() - t0) * o.speed) / 1000;
  const sid = randomUUID();
  const playback = new Playback(o.buffer ?? DEFAULT_BUFFER);
  const estimate = new ThroughputEstimate(DEFAULT_ESTIMATE);
  const requests: RequestRecord[] = [];
  const record: SessionRecord = {
    player: o.player,
    title: o.title,
    capKbps: o.cap.baseKbps,
    startupS: undefined,
    stallS: 0,
    stallCount: 0,
    playedS: 0,
    bitrateSeconds: 0,
    mediaS: 0,
    switches: 0,
    requests,
  };
  let totalS = Infinity;

  const state = (ot: string, extra: Partial<RequestState> = {}): RequestState => {
    playback.advanceTo(media());
    return {
      sid,
      cid: o.title,
      ot,
      startup: playback.state === 'startup',
      starved: playback.takeStarved(),
      bufferS: playback.bufferS,
      measuredKbps: estimate.samples > 0 ? estimate.kbps() : undefined,
      ...extra,
    };
  };

  /** One GET, its body read at the cap (manifests unpaced: a few KB); returns the body when asked. */
  const get = async (kind: RequestKind, url: string, s: RequestState, keep: boolean, detail: Pick<RequestRecord, 'segment' | 'switched'> = {}): Promise<{ body: Buffer | undefined; bytes: number; realMs: number }> => {
    const sent = now();
    const target = o.cmcd === false ? url : withCmcdQuery(url, s);
    const res = await request(target, { dispatcher: o.dispatcher, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    const chunks: Buffer[] = [];
    let bytes = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (keep) chunks.push(chunk);
      if (kind === 'manifest') continue;
      // The cap in force when the chunk came; holding off reading holds the edge's socket too.
      const wait = pacedWaitMs(bytes, realBytesPerMs(capAt(o.cap, media(), totalS), o.speed), now() - sent);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const realMs = now() - sent;
    requests.push({ kind, status: res.statusCode, xCache: String(res.headers['x-cache'] ?? ''), bytes, realMs, ...detail });
    if (res.statusCode !== 200) throw new SessionError(`${kind} ${new URL(url).pathname} answered ${res.statusCode}`);
    return { body: keep ? Buffer.concat(chunks) : undefined, bytes, realMs };
  };
  const text = async (url: string) => (await get('manifest', url, state('m'), true)).body!.toString('utf8');

  try {
    const variants = firstPathwayVariants(await text(`${o.steeringUrl}/v1/play/${encodeURIComponent(o.title)}/master.m3u8`));
    if (variants.length === 0) throw new SessionError('the multivariant playlist lists no variant');
    const ladder = variants.map((v) => v.bandwidth / 1000);
    const renditions = new Map<number, Rendition>();
    const rendition = async (i: number): Promise<Rendition> => {
      let r = renditions.get(i);
      if (!r) {
        const playlist = await text(variants[i]!.url);
        const entries = parseMediaPlaylist(playlist);
        const durations = segmentDurations(playlist);
        const hasMap = playlist.includes('#EXT-X-MAP:');
        const segs = entries.slice(hasMap ? 1 : 0);
        if (segs.length !== durations.length || segs.length === 0) throw new SessionError(`media playlist of ${variants[i]!.bandwidth} has ${segs.length} URIs for ${durations.length} #EXTINF`);
        r = { kbps: ladder[i]!, init: hasMap ? entries[0]!.url : undefined, segments: segs.map((e, k) => ({ url: e.url, durationS: durations[k]! })) };
        renditions.set(i, r);
      }
      return r;
    };

    let current: number | undefined;
    let k = 0;
    let count = Infinity;
    while (k < count) {
      const pick = chooseRendition({
        ladderKbps: ladder,
        current,
        estimateKbps: estimate.kbps(),
        bufferS: (playback.advanceTo(media()), playback.bufferS),
        playing: playback.state !== 'startup',
        segmentS: renditions.get(current ?? 0)?.segments[k]?.durationS ?? 2,
      });
      const r = await rendition(pick);
      if (count === Infinity) {
        count = r.segments.length;
        totalS = r.segments.reduce((a, s) => a + s.durationS, 0);
      }
      const seg = r.segments[k];
      if (!seg) throw new SessionError(`rendition ${r.kbps} kbps has no segment ${k}`);
      const switched = current !== undefined && pick !== current;
      if (pick !== current) {
        if (switched) record.switches++;
        current = pick;
        // A new rendition starts with its init segment; its nor is the segment that follows.
        if (r.init) await get('init', r.init, state('i', { nor: relativeNor(r.init, seg.url) }), false);
      }
      const next = r.segments[k + 1];
      const got = await get('media', seg.url, state('av', { bitrateKbps: r.kbps, durationS: seg.durationS, nor: next ? relativeNor(seg.url, next.url) : undefined }), false, { segment: k, switched });
      estimate.sample((got.realMs * o.speed) / 1000, got.bytes);
      playback.append(media(), seg.durationS);
      record.bitrateSeconds += r.kbps * seg.durationS;
      record.mediaS += seg.durationS;
      k++;
      // hls.js asks for the next segment once the buffer is below its goal by a segment.
      const nextS = r.segments[k]?.durationS ?? 0;
      const waitS = k < count ? playback.waitForRoomS(nextS) : 0;
      if (waitS > 0) await new Promise((res) => setTimeout(res, (waitS * 1000) / o.speed));
    }
    playback.finish(media());
  } catch (err) {
    playback.finish(media());
    record.error = err instanceof SessionError ? err.message : `${(err as { code?: string }).code ?? (err as Error).message}`;
  }
  record.startupS = playback.startupS;
  record.stallS = playback.stallS;
  record.stallCount = playback.stallCount;
  record.playedS = playback.playedS;
  return record;
}
