import { posix } from 'node:path';
import { isValidFilePath } from '../common/paths.js';
import { ManifestError } from './errors.js';

/**
 * Resolves a URI found in a manifest against the title-relative path of the thing that holds
 * it (the manifest itself, or a DASH BaseURL). Pure string logic, no file system.
 *
 * `base` ending in '/' is a directory (a DASH BaseURL); otherwise it is a file and its
 * directory is used. The result is title-relative, normalised, percent-decoded; a `ref`
 * ending in '/' keeps its trailing slash (a directory BaseURL).
 *
 * Refused, because the origin serves a title only from its own folder and steering rewrites
 * every media URL itself: absolute URLs, absolute paths, query strings and fragments (they
 * would not survive signing), encoded slashes / backslashes / NUL, and anything that climbs
 * out of the title.
 */
export function resolveRef(base: string, ref: string, where: string): string {
  const r = ref.trim();
  if (r === '') throw new ManifestError(`${where}: empty URI`);
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(r)) {
    throw new ManifestError(`${where}: absolute URL "${r}" (media must be inside the title folder)`);
  }
  if (r.startsWith('/')) throw new ManifestError(`${where}: absolute path "${r}" (media must be inside the title folder)`);
  if (r.includes('?') || r.includes('#')) throw new ManifestError(`${where}: query or fragment in URI "${r}"`);
  if (/%(2f|5c|00)/i.test(r) || r.includes('\\') || r.includes('\0')) {
    throw new ManifestError(`${where}: encoded slash, backslash or NUL in URI "${r}"`);
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(r);
  } catch {
    throw new ManifestError(`${where}: bad percent-encoding in URI "${r}"`);
  }
  const baseDir = base === '' || base.endsWith('/') ? base : posix.dirname(base) + '/';
  const joined = posix.normalize((baseDir === './' ? '' : baseDir) + decoded);
  if (joined === '..' || joined.startsWith('../')) {
    throw new ManifestError(`${where}: URI "${r}" points outside the title folder`);
  }
  const isDir = decoded.endsWith('/');
  const clean = joined.replace(/^\.\//, '').replace(/\/+$/, '');
  if (clean === '.' || clean === '') {
    if (isDir) return '';
    throw new ManifestError(`${where}: URI "${r}" names the title folder, not a file`);
  }
  if (!isValidFilePath(clean)) throw new ManifestError(`${where}: URI "${r}" has a file name we do not serve`);
  return isDir ? clean + '/' : clean;
}
