/**
 * Common Media Server Data (CTA-5006): what a server tells the player about the object
 * (`CMSD-Static`, a Structured Field dictionary, the same for every answer of one
 * representation) and about itself right now (`CMSD-Dynamic`, a list with one member per server
 * on the path, each its quoted identifier with parameters).
 */

export interface CmsdStatic {
  /** Object type: m (manifest), a, v, av, i (init), c (caption), tt, k (key), o. */
  ot?: string;
  /** Stream type: v (VOD), l (live). */
  st?: 'v' | 'l';
  /** Streaming format: d (DASH), h (HLS), s, o. */
  sf?: string;
  /** Duration of the object, ms. */
  d?: number;
  /** Encoded bitrate, kbps. */
  br?: number;
  /** Name of the origin or service that made the object (a string). */
  n?: string;
}

export interface CmsdDynamic {
  /** Estimated throughput from this server to this client, kbps. */
  etp?: number;
  /** Duress: the server is under load and players should ease off where they can. */
  du?: boolean;
  /** Round-trip time to the client, ms. */
  rtt?: number;
  /** Max suggested bitrate, kbps. */
  mb?: number;
}

const TOKEN_KEYS = new Set(['ot', 'st', 'sf']);

function sfString(s: string): string {
  // SF strings are printable ASCII; anything else would make the whole header unparsable.
  return `"${s.replace(/[^\x20-\x7e]/g, '?').replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function sfNumber(n: number): string {
  return String(Math.max(0, Math.round(n)));
}

/** `CMSD-Static` value, e.g. `ot=v,st=v`; empty when nothing is known. */
export function formatCmsdStatic(s: CmsdStatic): string {
  const out: string[] = [];
  for (const [k, v] of Object.entries(s)) {
    if (v === undefined || v === '') continue;
    if (typeof v === 'number') out.push(`${k}=${sfNumber(v)}`);
    else if (TOKEN_KEYS.has(k)) out.push(`${k}=${v}`);
    else out.push(`${k}=${sfString(String(v))}`);
  }
  return out.join(',');
}

/** One `CMSD-Dynamic` member: `"edge-a";etp=4200;du` — parameters in the order given, a false boolean left out. */
export function formatCmsdDynamic(serverId: string, p: CmsdDynamic = {}): string {
  let out = sfString(serverId);
  for (const [k, v] of Object.entries(p)) {
    if (v === undefined || v === false) continue;
    out += v === true ? `;${k}` : `;${k}=${sfNumber(v as number)}`;
  }
  return out;
}

const MANIFEST = /\.(m3u8|mpd)$/i;
const CAPTION = /\.(vtt|webvtt|ttml|dfxp|srt)$/i;
const KEY = /\.key$/i;
const AUDIO_EXT = /\.(aac|m4a|mp3|ac3|ec3|opus|cmfa)$/i;
const INIT = /(^|[/_.-])init([/_.-]|$)/i;
const AUDIO_NAME = /(^|[/_.-])audio([/_.-]|$)/i;
const VIDEO_NAME = /(^|[/_.-])video([/_.-]|$)|\.cmfv$/i;

/**
 * The CMCD/CMSD object type of a file, from its name and content type: the edge never parses
 * the media, so a segment whose name says neither audio nor video is `av` (could be either).
 */
export function objectTypeOf(file: string, contentType?: string): string {
  if (MANIFEST.test(file)) return 'm';
  if (CAPTION.test(file)) return 'c';
  if (KEY.test(file)) return 'k';
  if (INIT.test(file)) return 'i';
  if (AUDIO_EXT.test(file) || contentType?.startsWith('audio/') || AUDIO_NAME.test(file)) return 'a';
  if (VIDEO_NAME.test(file)) return 'v';
  if (contentType?.startsWith('video/') || /\.(m4s|mp4|ts|m4v|cmfv)$/i.test(file)) return 'av';
  return 'o';
}
