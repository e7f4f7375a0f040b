/** Longest raw request path we accept; longer is a 400, not a lookup. */
export const MAX_PATH_LENGTH = 1024;

const SEGMENT_RE = /^[A-Za-z0-9._~+=,@-]{1,255}$/;
const TITLE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Ids of keys, ISPs and edges in the cluster file (config.ts) — and so of pathways (player hints). */
export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export type ParsedObjectPath = { ok: true; title: string; file: string } | { ok: false; reason: string };

/**
 * Splits the raw (still percent-encoded) path after a route prefix such as "/c/" into
 * a title and a relative file path, refusing anything that could name a file outside
 * the title: dot segments, encoded slashes or backslashes, NUL, odd characters.
 */
export function parseObjectPath(rawRest: string): ParsedObjectPath {
  if (rawRest.length > MAX_PATH_LENGTH) return { ok: false, reason: 'path too long' };
  if (/%(2f|5c|00)/i.test(rawRest) || rawRest.includes('\\') || rawRest.includes('\0')) {
    return { ok: false, reason: 'encoded slash, backslash or NUL in path' };
  }
  const parts = rawRest.split('/');
  const decoded: string[] = [];
  for (const p of parts) {
    let d: string;
    try {
      d = decodeURIComponent(p);
    } catch {
      return { ok: false, reason: 'bad percent-encoding in path' };
    }
    if (d === '' || d === '.' || d === '..') return { ok: false, reason: 'empty or dot segment in path' };
    if (!SEGMENT_RE.test(d)) return { ok: false, reason: 'unsupported character in path' };
    decoded.push(d);
  }
  const [title, ...file] = decoded;
  if (!title || !TITLE_RE.test(title)) return { ok: false, reason: 'bad title' };
  if (file.length === 0) return { ok: false, reason: 'no file in path' };
  return { ok: true, title, file: file.join('/') };
}

/** Whether a title id is acceptable (ingest and URLs share the rule). */
export function isValidTitle(title: string): boolean {
  return TITLE_RE.test(title);
}

/** Whether a relative file path inside a title is acceptable. */
export function isValidFilePath(file: string): boolean {
  if (file.length > MAX_PATH_LENGTH) return false;
  return file.split('/').every((s) => s !== '.' && s !== '..' && SEGMENT_RE.test(s));
}

/** The cache key of an object: never includes the query (tokens, CMCD). */
export function objectKey(title: string, file: string): string {
  return JSON.stringify([title, file]);
}
