/**
 * What the bench player says with each request (pure): the CMCD fields of one request, built
 * from the player's state, and the URL carrying them as the `CMCD=` query parameter (hls.js's
 * and dash.js's default form). The text itself is `formatCmcd`'s, the project's one serializer.
 */
import { formatCmcd } from '../src/common/cmcd.js';

/** The player's state at the moment it asks for one object. */
export interface RequestState {
  sid: string;
  cid: string;
  /** CMCD object type: m (manifest), i (init), av (muxed audio and video), … */
  ot: string;
  /** Playback has not started yet (CMCD `su`). */
  startup: boolean;
  /** The buffer ran dry since the previous request (CMCD `bs`). */
  starved: boolean;
  /** Buffered media, s. */
  bufferS: number;
  /** Throughput estimate, kbps (CMCD `mtp`); undefined before the first download. */
  measuredKbps: number | undefined;
  /** Media objects only: the rendition's bitrate, kbps, and the object's duration, s. */
  bitrateKbps?: number;
  durationS?: number;
  /** The next object's URL relative to this one (CMCD `nor`), when there is a next one. */
  nor?: string;
}

/** The CMCD keys of one request: session keys always, buffer keys for media, nothing false. */
export function cmcdFields(s: RequestState): Parameters<typeof formatCmcd>[0] {
  const media = s.bitrateKbps !== undefined;
  return {
    sid: s.sid,
    cid: s.cid,
    ot: s.ot,
    st: 'v',
    sf: 'h',
    v: 1,
    ...(s.startup ? { su: true } : {}),
    ...(s.starved ? { bs: true } : {}),
    ...(s.measuredKbps !== undefined ? { mtp: s.measuredKbps } : {}),
    ...(media ? { br: s.bitrateKbps, bl: s.bufferS * 1000, d: (s.durationS ?? 0) * 1000 } : {}),
    // The deadline: the media time until the buffer runs dry at normal speed (pr = 1).
    ...(media && !s.startup ? { dl: s.bufferS * 1000 } : {}),
    ...(s.nor !== undefined ? { nor: s.nor } : {}),
  };
}

/** `url` with the CMCD query parameter appended. */
export function withCmcdQuery(url: string, s: RequestState): string {
  return `${url}${url.includes('?') ? '&' : '?'}CMCD=${encodeURIComponent(formatCmcd(cmcdFields(s)))}`;
}

/**
 * `next` relative to `current`, as CMCD `nor` wants it: for an object in the same folder of the
 * same host, its name (decoded: formatCmcd encodes it); undefined otherwise (a `nor` is a
 * relative URL, and this player never needs one across folders or hosts). The query is left
 * out: it is the next object's token, which the edge does not need to fetch it for itself.
 */
export function relativeNor(current: string, next: string): string | undefined {
  const a = new URL(current);
  const b = new URL(next);
  if (a.origin !== b.origin) return undefined;
  const dirOf = (p: string) => p.slice(0, p.lastIndexOf('/') + 1);
  if (dirOf(a.pathname) !== dirOf(b.pathname)) return undefined;
  return decodeURIComponent(b.pathname.slice(dirOf(b.pathname).length));
}
