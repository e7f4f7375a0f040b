import { isValidTitle, parseObjectPath } from './paths.js';

/**
 * What a purge removes, checked once where it enters (the admin route) and then matched against
 * cache keys by every tier and worker alike:
 *
 *   { title }            every file of the title
 *   { title, file }      one file
 *   { title, prefix }    the title's files whose path starts with prefix (`video/1080p/`)
 *   { prefix }           every file of every title whose id starts with prefix (`show-s01`)
 *
 * Pure.
 */
export type PurgeSelector = { title: string; file?: string; prefix?: undefined } | { title?: string; file?: undefined; prefix: string };

/** A prefix longer than any key could be is a mistake, not a purge of nothing. */
const MAX_PREFIX = 1024;

/** The selector of a purge request's JSON body, or why it is not one (one line, naming the field). */
export function parsePurgeSelector(body: unknown): { ok: true; selector: PurgeSelector } | { ok: false; reason: string } {
  const b = (body ?? {}) as Record<string, unknown>;
  if (typeof b !== 'object' || Array.isArray(b)) return { ok: false, reason: 'body must be JSON {"title": "...", "file"?: "..."} or {"title"?: "...", "prefix": "..."}' };
  for (const k of Object.keys(b)) {
    if (k !== 'title' && k !== 'file' && k !== 'prefix') return { ok: false, reason: `${k}: unknown field (title, file, prefix)` };
  }
  const { title, file, prefix } = b;
  if (title !== undefined && (typeof title !== 'string' || !isValidTitle(title))) return { ok: false, reason: `title: ${JSON.stringify(title)} is not a title id` };
  if (file !== undefined && typeof file !== 'string') return { ok: false, reason: 'file must be a string' };
  if (prefix !== undefined && (typeof prefix !== 'string' || prefix === '' || prefix.length > MAX_PREFIX)) {
    return { ok: false, reason: `prefix must be a non-empty string of at most ${MAX_PREFIX} characters` };
  }
  if (file !== undefined && prefix !== undefined) return { ok: false, reason: 'file and prefix: give one, not both' };
  if (prefix !== undefined) {
    return { ok: true, selector: title === undefined ? { prefix: prefix as string } : { title: title as string, prefix: prefix as string } };
  }
  if (title === undefined) return { ok: false, reason: 'title: missing (or give a prefix of title ids)' };
  if (file !== undefined) {
    const check = parseObjectPath(`${title}/${file}`);
    if (!check.ok) return { ok: false, reason: `file: ${check.reason}` };
    return { ok: true, selector: { title: title as string, file } };
  }
  return { ok: true, selector: { title: title as string } };
}

/** Whether the object (title, file) is one the selector removes. */
export function purgeMatches(sel: PurgeSelector, title: string, file: string): boolean {
  if (sel.prefix !== undefined) return sel.title === undefined ? title.startsWith(sel.prefix) : title === sel.title && file.startsWith(sel.prefix);
  return title === sel.title && (sel.file === undefined || file === sel.file);
}

/** The same test on a cache key (JSON `[title, file]`, objectKey); a key of another shape never matches. */
export function purgeMatchesKey(sel: PurgeSelector, key: string): boolean {
  let parts: unknown;
  try {
    parts = JSON.parse(key);
  } catch {
    return false;
  }
  if (!Array.isArray(parts) || parts.length !== 2 || typeof parts[0] !== 'string' || typeof parts[1] !== 'string') return false;
  return purgeMatches(sel, parts[0], parts[1]);
}

/** For logs and reports: `title T`, `T/file`, `files of T under P`, `titles starting P`. */
export function describePurge(sel: PurgeSelector): string {
  if (sel.prefix !== undefined) return sel.title === undefined ? `titles starting "${sel.prefix}"` : `files of ${sel.title} starting "${sel.prefix}"`;
  return sel.file === undefined ? `title ${sel.title}` : `${sel.title}/${sel.file}`;
}
