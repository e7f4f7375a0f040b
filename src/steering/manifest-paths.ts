import { isValidFilePath } from '../common/paths.js';

/** A media playlist or MPD named a file steering cannot serve safely. */
export class ManifestRewriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestRewriteError';
  }
}

/** Whether a URI reference carries its own scheme ("https:", "skd:", "data:"): left untouched. */
export function hasScheme(uri: string): boolean {
  return /^[A-Za-z][A-Za-z0-9+.-]*:/.test(uri);
}

/** The folder part of a file path inside a title ("" or "video/"). */
export function dirOf(file: string): string {
  const slash = file.lastIndexOf('/');
  return slash < 0 ? '' : file.slice(0, slash + 1);
}

/**
 * Resolves a relative URI reference found in a manifest at `base` (a folder path inside the
 * title, "" or ending in "/") to a file path inside the title. Query and fragment are
 * dropped (the signed query replaces them). Anything that leaves the title or names an
 * unsafe path is a ManifestRewriteError.
 */
export function resolveInTitle(base: string, uri: string): string {
  if (hasScheme(uri) || uri.startsWith('/')) throw new ManifestRewriteError(`"${uri}" is not a relative reference`);
  const cut = uri.search(/[?#]/);
  const ref = cut < 0 ? uri : uri.slice(0, cut);
  const out: string[] = base === '' ? [] : base.replace(/\/$/, '').split('/');
  for (const raw of ref.split('/')) {
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      throw new ManifestRewriteError(`"${uri}" has bad percent-encoding`);
    }
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) throw new ManifestRewriteError(`"${uri}" leaves the title`);
      out.pop();
      continue;
    }
    out.push(seg);
  }
  const file = out.join('/');
  if (file === '' || !isValidFilePath(file)) throw new ManifestRewriteError(`"${uri}" is not a servable file path`);
  return file;
}
