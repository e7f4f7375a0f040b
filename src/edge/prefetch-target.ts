import { MAX_PATH_LENGTH, parseObjectPath } from '../common/paths.js';
import { type ByteRange, parseRange } from '../common/range.js';

/**
 * What a player says it will ask next (CMCD `nor`, `nrr`), turned into an object of the same
 * title and a byte range of it — or refused. Pure: no I/O, no clock.
 *
 * Why "the same title": a token covers one path (`/c/{title}/{file}`, src/common/signing.ts),
 * yet a player holding one holds the rest of the title's — steering signs every URL of a title's
 * playlists at once. A prefetch brings bytes into the cache and gives the client nothing: its
 * next request still needs a token of its own. So a prefetch may reach any file of the title the
 * current request's token was checked for, and never anything outside it.
 */

/** The next request as CMCD says it: an object (`nor`) and/or a range (`nrr`). */
export interface NextObjectHints {
  /** Decoded (the CMCD parser undid the spec's URL-encoding), relative to the request's URL. */
  readonly nor?: string;
  /** "<start>-<end>", "<start>-" or "-<suffix>" (inclusive, as in a Range header, without "bytes="). */
  readonly nrr?: string;
}

/** A byte range as `nrr` states it, before the object's size is known. */
export interface NextRange {
  /** As a Range header value ("bytes=…"): parseRange resolves it once the size is known. */
  readonly header: string;
  /** The first byte it asks for, when it says (not for a suffix): which slice to learn the object from. */
  readonly firstByte: number | undefined;
}

export type NextObject =
  | { ok: true; title: string; file: string; range: NextRange | undefined }
  | { ok: false; reason: string };

/** A scheme ("http:", "data:", "javascript:"): an absolute URL, another host's or none at all. */
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
const NRR = /^(?:(\d{1,15})-(\d{1,15})?|-(\d{1,15}))$/;

/**
 * The object a prefetch for a request of `/c/{title}/{file}` may fetch, from the request's CMCD.
 * `nor` is resolved against the request's URL as a browser resolves a relative link (its
 * folder, then `.` and `..` segments), and the result must be a file under `/c/{title}/`: hls.js
 * sends every segment's `nor` as `../{title}/{next}` (its URL helper climbs one level and comes
 * back down), so a `..` that stays inside the title is followed. Refused: absolute URLs and other
 * hosts (a scheme, `//`), anything that ends outside `/c/{title}/` or climbs above the root,
 * encoded dots, slashes or backslashes (never resolved: refused as a request's path refuses them),
 * backslashes, NUL, anything else `parseObjectPath` refuses; a malformed `nrr`. A query or
 * fragment on `nor` is dropped (the edge signs its own upstream requests).
 */
export function nextObject(title: string, file: string, hints: NextObjectHints): NextObject {
  let target = file;
  if (hints.nor !== undefined) {
    const resolved = resolveNor(title, file, hints.nor);
    if (!resolved.ok) return resolved;
    target = resolved.file;
  } else if (hints.nrr === undefined) {
    return { ok: false, reason: 'no nor or nrr' };
  }
  let range: NextRange | undefined;
  if (hints.nrr !== undefined) {
    const m = NRR.exec(hints.nrr);
    if (!m) return { ok: false, reason: 'malformed nrr' };
    if (m[1] !== undefined && m[2] !== undefined && Number(m[2]) < Number(m[1])) return { ok: false, reason: 'malformed nrr' };
    range = { header: `bytes=${hints.nrr}`, firstByte: m[1] === undefined ? undefined : Number(m[1]) };
  } else if (target === file) {
    // `nor` naming the object being answered: nothing new to bring.
    return { ok: false, reason: 'nor names the current object' };
  }
  return { ok: true, title, file: target, range };
}

/** `nor` as a file of `title`: see nextObject. */
export function resolveNor(title: string, file: string, nor: string): { ok: true; file: string } | { ok: false; reason: string } {
  if (nor.length === 0) return { ok: false, reason: 'empty nor' };
  if (nor.length > MAX_PATH_LENGTH) return { ok: false, reason: 'nor too long' };
  let end = nor.length;
  const q = nor.indexOf('?');
  if (q >= 0) end = q;
  const h = nor.indexOf('#');
  if (h >= 0 && h < end) end = h;
  const path = nor.slice(0, end);
  if (path.length === 0) return { ok: false, reason: 'nor has no path' };
  if (SCHEME.test(path) || path.startsWith('//')) return { ok: false, reason: 'nor is an absolute URL' };
  // A browser reads a backslash as '/' in http URLs; the edge refuses one in paths: no second reading here either.
  if (path.includes('\\')) return { ok: false, reason: 'nor: backslash in path' };
  // `file` is decoded, and made of characters a URL path carries as they are (SEGMENT_RE): it is its own raw form.
  const slash = file.lastIndexOf('/');
  const full = path.startsWith('/') ? path : `/c/${title}/${file.slice(0, slash + 1)}${path}`;
  const segments = full.split('/');
  const last = segments[segments.length - 1];
  if (last === '.' || last === '..') return { ok: false, reason: 'nor names a folder' };
  // RFC 3986 §5.2.4, on literal dot segments only; from index 1: `full` starts with '/'.
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '.') continue;
    if (s === '..') {
      if (out.length === 0) return { ok: false, reason: 'nor climbs above the root' };
      out.pop();
    } else out.push(s);
  }
  if (out.length < 3 || out[0] !== 'c' || out[1] !== title) return { ok: false, reason: 'nor leaves the title' };
  const parsed = parseObjectPath(out.slice(1).join('/'));
  if (!parsed.ok) return { ok: false, reason: `nor: ${parsed.reason}` };
  // Cannot differ (out[1] is the title); checked as the rule it is.
  if (parsed.title !== title) return { ok: false, reason: 'nor leaves the title' };
  return { ok: true, file: parsed.file };
}

/**
 * The bytes of an object of `size` a prefetch brings: `range` clamped to the object, or all of
 * it; undefined when nothing of it is satisfiable (a range past the end, an empty object).
 */
export function prefetchRange(range: NextRange | undefined, size: number): ByteRange | undefined {
  if (size <= 0) return undefined;
  if (range === undefined) return { start: 0, end: size };
  const r = parseRange(range.header, size);
  // nextObject allowed one spec only: one range, or none satisfiable.
  return r.kind === 'ranges' ? r.ranges[0] : undefined;
}
