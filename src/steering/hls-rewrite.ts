import { type ManifestSafetyOptions, UnsafeManifestError, checkHlsPlaylist } from '../common/manifest-safety.js';
import { ManifestRewriteError, dirOf, resolveInTitle } from './manifest-paths.js';

/**
 * HLS playlist rewriting (pure). Steering serves every playlist itself (docs/contract.md
 * "Playback"): a query string does not survive a relative URI, so media playlists
 * carry absolute signed edge URLs, and the multivariant playlist lists one copy of every
 * variant per pathway (= edge), each pointing back at steering's media playlist for it.
 */

/** One attribute of an attribute list, value as written (quotes kept). */
type Attr = [key: string, raw: string];

/** Splits `KEY=VALUE,KEY="a,b"` into pairs, keeping order and quoting. */
export function parseAttributes(list: string): Attr[] {
  const out: Attr[] = [];
  let i = 0;
  while (i < list.length) {
    const eq = list.indexOf('=', i);
    if (eq < 0) break;
    const key = list.slice(i, eq).trim();
    let j = eq + 1;
    if (list[j] === '"') {
      const close = list.indexOf('"', j + 1);
      j = close < 0 ? list.length : close + 1;
    } else {
      const comma = list.indexOf(',', j);
      j = comma < 0 ? list.length : comma;
    }
    out.push([key, list.slice(eq + 1, j)]);
    i = j;
    if (list[i] === ',') i++;
  }
  return out;
}

function formatAttributes(attrs: Attr[]): string {
  return attrs.map(([k, v]) => `${k}=${v}`).join(',');
}

function unquote(raw: string): string {
  return raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2 ? raw.slice(1, -1) : raw;
}

function getAttr(attrs: Attr[], key: string): string | undefined {
  const a = attrs.find(([k]) => k === key);
  return a ? unquote(a[1]) : undefined;
}

function setAttr(attrs: Attr[], key: string, value: string, quoted = true): Attr[] {
  const raw = quoted ? `"${value}"` : value;
  const out = attrs.map((a): Attr => (a[0] === key ? [key, raw] : a));
  if (!attrs.some(([k]) => k === key)) out.push([key, raw]);
  return out;
}

function tagOf(line: string): { tag: string; rest: string } | undefined {
  if (!line.startsWith('#EXT')) return undefined;
  const colon = line.indexOf(':');
  return colon < 0 ? { tag: line, rest: '' } : { tag: line.slice(0, colon), rest: line.slice(colon + 1) };
}

/** The shared manifest check, as a rewrite error (steering answers 502 and logs it). */
function check(text: string, opts: ManifestSafetyOptions, after = false): void {
  try {
    checkHlsPlaylist(text, opts);
  } catch (err) {
    if (err instanceof UnsafeManifestError) throw new ManifestRewriteError(after ? `after rewriting: ${err.message}` : err.message);
    throw err;
  }
}

/** Whether a tag line carries an attribute a player would dereference. */
function hasUriAttribute(rest: string): boolean {
  return /(^|,)\s*([A-Z0-9-]*URI|X-ASSET-LIST)=/.test(rest);
}

/** FairPlay key ids (`skd:`) are handed to the app, never fetched: kept as written. */
const isKeyId = (uri: string) => /^skd:/i.test(uri);

function lines(text: string): string[] {
  const ls = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  if (!ls[0]?.startsWith('#EXTM3U')) throw new ManifestRewriteError('not an HLS playlist (no #EXTM3U)');
  return ls;
}

/** Whether a playlist is a multivariant (master) playlist. */
export function isMultivariant(text: string): boolean {
  return /^#EXT-X-STREAM-INF:/m.test(text) || /^#EXT-X-I-FRAME-STREAM-INF:/m.test(text);
}

export interface MultivariantOptions {
  /** Path of this playlist inside the title (relative URIs resolve against its folder). */
  manifest: string;
  /** Edge ids in rank order; the first is the initial pathway. */
  pathways: readonly string[];
  /** Absolute URL of the steering manifest (EXT-X-CONTENT-STEERING SERVER-URI). */
  steeringUri: string;
  /** Absolute URL of steering's media playlist `file` for `pathway`. */
  mediaPlaylistUrl: (file: string, pathway: string) => string;
  /**
   * Absolute signed URL of a file of the title on the first pathway (EXT-X-SESSION-DATA and
   * EXT-X-SESSION-KEY URIs). Absent: those tags are left out.
   */
  fileUrl?: (file: string) => string;
}

const GROUP_REFS = ['AUDIO', 'VIDEO', 'SUBTITLES'] as const;

/** Rendition group ids are per pathway (a pathway's variants must use its own renditions). */
export function pathwayGroupId(group: string, pathway: string): string {
  return `${group}_${pathway}`;
}

/**
 * Rewrites a multivariant playlist: `#EXT-X-CONTENT-STEERING` with the first pathway, then
 * for every pathway its EXT-X-MEDIA renditions (GROUP-ID suffixed with the pathway), its
 * variants (PATHWAY-ID, group references suffixed) and I-frame variants, all URIs pointing
 * at steering's media playlist for that pathway. Closed-caption groups carry no URI and
 * are listed once. Other tags are kept; an existing EXT-X-CONTENT-STEERING is replaced.
 */
export function rewriteMultivariant(text: string, opts: MultivariantOptions): string {
  if (opts.pathways.length === 0) throw new ManifestRewriteError('no pathway to offer');
  const ls = lines(text);
  check(text, { name: opts.manifest });
  const base = dirOf(opts.manifest);
  // Every URL we write goes through here, so the output can be checked against exactly these.
  const built = new Set<string>([opts.steeringUri]);
  const mediaPlaylistUrl = (file: string, pathway: string) => {
    const u = opts.mediaPlaylistUrl(file, pathway);
    built.add(u);
    return u;
  };
  const globals: string[] = [];
  const media: Attr[][] = [];
  const captions: string[] = [];
  const variants: { attrs: Attr[]; file: string }[] = [];
  const iframes: { attrs: Attr[]; file: string }[] = [];

  for (let i = 1; i < ls.length; i++) {
    const line = ls[i]!.trim();
    if (line === '') continue;
    const t = tagOf(line);
    if (!t) {
      if (line.startsWith('#')) globals.push(line); // comment
      continue; // a stray URI without EXT-X-STREAM-INF
    }
    switch (t.tag) {
      case '#EXT-X-CONTENT-STEERING':
        break;
      case '#EXT-X-MEDIA': {
        const attrs = parseAttributes(t.rest);
        if (getAttr(attrs, 'TYPE') === 'CLOSED-CAPTIONS') captions.push(line);
        else media.push(attrs);
        break;
      }
      case '#EXT-X-STREAM-INF': {
        let j = i + 1;
        while (j < ls.length && (ls[j]!.trim() === '' || (ls[j]!.trim().startsWith('#') && !ls[j]!.trim().startsWith('#EXT')))) j++;
        const uri = ls[j]?.trim();
        if (!uri || uri.startsWith('#')) throw new ManifestRewriteError('EXT-X-STREAM-INF without a URI');
        variants.push({ attrs: parseAttributes(t.rest), file: resolveInTitle(base, uri) });
        i = j;
        break;
      }
      case '#EXT-X-I-FRAME-STREAM-INF': {
        const attrs = parseAttributes(t.rest);
        const uri = getAttr(attrs, 'URI');
        if (!uri) throw new ManifestRewriteError('EXT-X-I-FRAME-STREAM-INF without URI');
        iframes.push({ attrs, file: resolveInTitle(base, uri) });
        break;
      }
      case '#EXT-X-SESSION-DATA':
      case '#EXT-X-SESSION-KEY': {
        const attrs = parseAttributes(t.rest);
        const uri = getAttr(attrs, 'URI');
        if (uri === undefined || (t.tag === '#EXT-X-SESSION-KEY' && isKeyId(uri))) globals.push(line);
        else if (opts.fileUrl) {
          const u = opts.fileUrl(resolveInTitle(base, uri));
          built.add(u);
          globals.push(`${t.tag}:${formatAttributes(setAttr(attrs, 'URI', u))}`);
        }
        break;
      }
      default:
        // A URI in a tag we do not rewrite would resolve against steering, or worse: left out.
        if (!hasUriAttribute(t.rest)) globals.push(line);
    }
  }

  const out: string[] = ['#EXTM3U', ...globals];
  out.push(`#EXT-X-CONTENT-STEERING:SERVER-URI="${opts.steeringUri}",PATHWAY-ID="${opts.pathways[0]}"`);
  out.push(...captions);
  for (const p of opts.pathways) {
    for (const m of media) {
      let attrs = m;
      const group = getAttr(attrs, 'GROUP-ID');
      if (group !== undefined) attrs = setAttr(attrs, 'GROUP-ID', pathwayGroupId(group, p));
      const uri = getAttr(attrs, 'URI');
      if (uri !== undefined) attrs = setAttr(attrs, 'URI', mediaPlaylistUrl(resolveInTitle(base, uri), p));
      out.push(`#EXT-X-MEDIA:${formatAttributes(attrs)}`);
    }
    for (const v of variants) {
      let attrs = setAttr(v.attrs, 'PATHWAY-ID', p);
      for (const ref of GROUP_REFS) {
        const g = getAttr(attrs, ref);
        if (g !== undefined) attrs = setAttr(attrs, ref, pathwayGroupId(g, p));
      }
      out.push(`#EXT-X-STREAM-INF:${formatAttributes(attrs)}`, mediaPlaylistUrl(v.file, p));
    }
    for (const f of iframes) {
      let attrs = setAttr(f.attrs, 'PATHWAY-ID', p);
      const g = getAttr(attrs, 'VIDEO');
      if (g !== undefined) attrs = setAttr(attrs, 'VIDEO', pathwayGroupId(g, p));
      attrs = setAttr(attrs, 'URI', mediaPlaylistUrl(f.file, p));
      out.push(`#EXT-X-I-FRAME-STREAM-INF:${formatAttributes(attrs)}`);
    }
  }
  const result = out.join('\n') + '\n';
  check(result, { name: opts.manifest, isOwn: (u) => built.has(u), relative: false }, true);
  return result;
}

export interface MediaOptions {
  /** Path of this playlist inside the title. */
  manifest: string;
  /** Absolute signed edge URL of a file inside the title. */
  fileUrl: (file: string) => string;
}

/** Tags whose URI attribute names a media file (segment, init section, key, part). */
const URI_TAGS = new Set(['#EXT-X-MAP', '#EXT-X-KEY', '#EXT-X-PART', '#EXT-X-PRELOAD-HINT']);

/**
 * Rewrites a media playlist: every segment URI and every URI attribute of EXT-X-MAP,
 * EXT-X-KEY, EXT-X-PART and EXT-X-PRELOAD-HINT becomes an absolute signed edge URL.
 * Byte ranges (EXT-X-BYTERANGE, BYTERANGE=) are untouched; FairPlay key ids are kept. Other
 * tags with a URI (EXT-X-RENDITION-REPORT, interstitials) are left out: we build no URL for
 * them, and a relative one would resolve against steering.
 */
export function rewriteMedia(text: string, opts: MediaOptions): string {
  const ls = lines(text);
  check(text, { name: opts.manifest });
  const base = dirOf(opts.manifest);
  const memo = new Map<string, string>();
  const built = new Set<string>();
  const urlOf = (uri: string) => {
    if (isKeyId(uri)) return uri;
    const file = resolveInTitle(base, uri);
    let u = memo.get(file);
    if (u === undefined) {
      u = opts.fileUrl(file);
      memo.set(file, u);
      built.add(u);
    }
    return u;
  };
  const out: string[] = [];
  for (const raw of ls) {
    const line = raw.trim();
    if (line === '' || (line.startsWith('#') && !line.startsWith('#EXT'))) {
      out.push(line);
      continue;
    }
    const t = tagOf(line);
    if (!t) {
      if (line.startsWith('#')) out.push(line);
      else out.push(urlOf(line));
      continue;
    }
    if (URI_TAGS.has(t.tag)) {
      const attrs = parseAttributes(t.rest);
      const uri = getAttr(attrs, 'URI');
      out.push(uri === undefined ? line : `${t.tag}:${formatAttributes(setAttr(attrs, 'URI', urlOf(uri)))}`);
      continue;
    }
    if (!hasUriAttribute(t.rest)) out.push(line);
  }
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  const result = out.join('\n') + '\n';
  check(result, { name: opts.manifest, isOwn: (u) => built.has(u), relative: false }, true);
  return result;
}
