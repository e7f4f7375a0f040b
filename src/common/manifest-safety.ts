import { DOMParser, type Document, type Element } from '@xmldom/xmldom';

/**
 * The one check of what a manifest may tell a player to fetch, used by the origin at ingest
 * and again by steering before and after it rewrites a manifest (pure, no I/O).
 *
 * A manifest that names a host sends players there, and a player resolves signed segment URLs
 * against whatever BaseURL it believes in: a stranger's host would receive our tokens. So:
 * - every URI-bearing HLS tag and attribute, every URI line, and every URI-bearing DASH element
 *   and attribute is checked; URIs must be relative references (no scheme, no `//host`, no
 *   absolute path) unless the caller says they are its own (`ownPrefixes`, `isOwn`: what
 *   steering built itself);
 * - a duplicate HLS attribute is an error (parsers disagree about which one wins), and so is an
 *   attribute list that does not parse exactly: two parsers must never read two meanings;
 * - DASH xlink (any attribute in the xlink namespace), `Location`, `PatchLocation`, time
 *   servers (`UTCTiming` other than the direct schemes), callback events and a second
 *   `BaseURL` at one level are refused.
 * The one scheme let through is `skd:` in EXT-X-KEY / EXT-X-SESSION-KEY: a FairPlay key id
 * handed to the app's key delegate, never fetched by the player.
 * Whether a relative URI stays inside the title is the job of the path resolvers
 * (origin `resolveRef`, steering `resolveInTitle`).
 */

export class UnsafeManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafeManifestError';
  }
}

export interface ManifestSafetyOptions {
  /** Names the manifest in messages (e.g. `title/master.m3u8`). */
  name?: string;
  /**
   * Absolute URL prefixes that are ours (edge `/c/{title}/` bases, steering's public URL).
   * Given when checking what steering is about to emit: URIs starting with one are allowed.
   */
  ownPrefixes?: readonly string[];
  /** Says whether a URI is one the caller built (e.g. a marker it will fill in later). */
  isOwn?: (uri: string) => boolean;
  /**
   * Whether relative references are allowed (default true). Steering's HLS output holds only
   * absolute URLs it built, so it checks with false.
   */
  relative?: boolean;
}

const SCHEME_RE = /^[A-Za-z][A-Za-z0-9+.-]*:/;

type OwnTest = (uri: string) => boolean;

function ownTest(opts: ManifestSafetyOptions): OwnTest | undefined {
  const { ownPrefixes, isOwn } = opts;
  if (!ownPrefixes && !isOwn) return undefined;
  return (uri) => (isOwn?.(uri) ?? false) || (ownPrefixes?.some((p) => uri.startsWith(p)) ?? false);
}

/** Why `uri` may not be used, or undefined when it is a safe relative reference or one of ours. */
function uriProblem(uri: string, own: OwnTest | undefined, relative = true): string | undefined {
  if (own?.(uri)) return undefined;
  const u = uri.trim();
  if (u === '') return 'empty URI';
  if (/[\u0000-\u001f\u007f\\]/.test(u)) return `URI "${uri}" has a control character or backslash`;
  if (SCHEME_RE.test(u)) return `absolute URL "${uri}" (only references inside the title are allowed)`;
  if (u.startsWith('//')) return `network-path reference "${uri}" names another host`;
  if (u.startsWith('/')) return `absolute path "${uri}" (only references inside the title are allowed)`;
  if (!relative) return `URI "${uri}" is not one steering built`;
  return undefined;
}

// ---------------------------------------------------------------- HLS

/** One attribute of an HLS attribute list; `value` as written (quotes kept). */
export type HlsAttribute = [name: string, value: string];

const ATTR_RE = /\s*([A-Z0-9-]+)=("[^"\r\n]*"|[^",\s]*)\s*(,|$)/y;

/**
 * Parses an attribute list exactly (RFC 8216bis §4.2, with whitespace tolerated around
 * commas). Throws on anything else and on a name given twice.
 */
export function parseHlsAttributeList(list: string): HlsAttribute[] {
  const out: HlsAttribute[] = [];
  const seen = new Set<string>();
  ATTR_RE.lastIndex = 0;
  while (ATTR_RE.lastIndex < list.length) {
    const at = ATTR_RE.lastIndex;
    const m = ATTR_RE.exec(list);
    if (!m) throw new UnsafeManifestError(`attribute list does not parse at "${list.slice(at, at + 40)}"`);
    if (seen.has(m[1]!)) throw new UnsafeManifestError(`duplicate attribute ${m[1]}`);
    seen.add(m[1]!);
    out.push([m[1]!, m[2]!]);
    if (m[3] === '') break;
    if (ATTR_RE.lastIndex >= list.length) throw new UnsafeManifestError('attribute list ends with a comma');
  }
  return out;
}

/** Tags whose value is an attribute list (RFC 8216bis, plus the image-stream extension). */
const ATTRIBUTE_LIST_TAGS = new Set([
  'EXT-X-KEY',
  'EXT-X-SESSION-KEY',
  'EXT-X-MAP',
  'EXT-X-PART',
  'EXT-X-PART-INF',
  'EXT-X-PRELOAD-HINT',
  'EXT-X-RENDITION-REPORT',
  'EXT-X-SKIP',
  'EXT-X-SERVER-CONTROL',
  'EXT-X-DATERANGE',
  'EXT-X-MEDIA',
  'EXT-X-STREAM-INF',
  'EXT-X-I-FRAME-STREAM-INF',
  'EXT-X-IMAGE-STREAM-INF',
  'EXT-X-SESSION-DATA',
  'EXT-X-CONTENT-STEERING',
  'EXT-X-START',
  'EXT-X-DEFINE',
]);

/** Attributes a player dereferences: URI, SERVER-URI, interstitials' X-ASSET-URI / X-ASSET-LIST. */
export function isUriAttribute(name: string): boolean {
  return name === 'URI' || name.endsWith('-URI') || name === 'X-ASSET-LIST';
}

function unquote(v: string): string {
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}

/**
 * Checks an HLS playlist (multivariant or media). Throws UnsafeManifestError naming the line.
 */
export function checkHlsPlaylist(text: string, opts: ManifestSafetyOptions = {}): void {
  const name = opts.name ?? 'playlist';
  const own = ownTest(opts);
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  if (lines[0]?.trim() !== '#EXTM3U') throw new UnsafeManifestError(`${name}: not an HLS playlist (no #EXTM3U first line)`);
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.trim();
    const fail = (problem: string): never => {
      throw new UnsafeManifestError(`${name} line ${i + 1}: ${problem}`);
    };
    if (line === '') continue;
    if (!line.startsWith('#')) {
      const p = uriProblem(line, own, opts.relative);
      if (p) fail(p);
      continue;
    }
    if (!line.startsWith('#EXT')) continue; // a comment: players ignore it
    const colon = line.indexOf(':');
    const tag = colon < 0 ? line.slice(1) : line.slice(1, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1);
    // Variables could assemble a URI no check ever saw.
    if (tag === 'EXT-X-DEFINE' || value.includes('{$')) fail('variable substitution (EXT-X-DEFINE) is not supported');
    if (ATTRIBUTE_LIST_TAGS.has(tag)) {
      let attrs: HlsAttribute[];
      try {
        attrs = parseHlsAttributeList(value);
      } catch (err) {
        return fail(`${tag}: ${(err as Error).message}`);
      }
      for (const [k, raw] of attrs) {
        const v = unquote(raw);
        if (isUriAttribute(k)) {
          if ((tag === 'EXT-X-KEY' || tag === 'EXT-X-SESSION-KEY') && k === 'URI' && /^skd:/i.test(v)) continue;
          const p = uriProblem(v, own, opts.relative);
          if (p) fail(`${tag} ${k}: ${p}`);
        } else if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(v) && !own?.(v)) {
          fail(`${tag} ${k}: absolute URL "${v}"`);
        }
      }
      continue;
    }
    // A tag we do not know: it must not carry anything a player could dereference.
    if (/(^|,)\s*[A-Z0-9-]*URI\s*=/.test(value) || /[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value)) {
      fail(`${tag} carries a URI that cannot be checked`);
    }
  }
}

// ---------------------------------------------------------------- DASH

export const XLINK_NS = 'http://www.w3.org/1999/xlink';

/** Attributes that hold a URI, per element local name. */
const DASH_URI_ATTRIBUTES: Record<string, readonly string[]> = {
  SegmentTemplate: ['media', 'initialization', 'index', 'bitstreamSwitching'],
  SegmentURL: ['media', 'index'],
  Initialization: ['sourceURL'],
  RepresentationIndex: ['sourceURL'],
  BitstreamSwitching: ['sourceURL'],
  Laurl: ['licenseUrl'],
  laurl: ['licenseUrl'],
  ProgramInformation: ['moreInformationURL'],
};
/** Elements whose text is a URI. */
const DASH_URI_TEXT = new Set(['BaseURL', 'ContentSteering', 'Laurl', 'laurl']);
/** Elements a static, self-contained MPD never needs and that send players elsewhere. */
const DASH_REFUSED = new Set(['Location', 'PatchLocation']);
const UTC_DIRECT = new Set(['urn:mpeg:dash:utc:direct:2014', 'urn:mpeg:dash:utc:direct:2012']);
const CALLBACK_SCHEME = 'urn:mpeg:dash:event:callback:2015';

function childElements(el: Element): Element[] {
  const out: Element[] = [];
  for (let n = el.firstChild; n; n = n.nextSibling) if (n.nodeType === 1) out.push(n as Element);
  return out;
}

/**
 * Checks a parsed MPD. Throws UnsafeManifestError naming the element. Several BaseURLs at one
 * level are allowed only when every one is ours (steering lists one per edge).
 */
export function checkDashDocument(doc: Document, opts: ManifestSafetyOptions = {}): void {
  const name = opts.name ?? 'MPD';
  const own = ownTest(opts);
  const root = doc.documentElement;
  if (!root) throw new UnsafeManifestError(`${name}: empty document`);
  const visit = (el: Element, path: string): void => {
    const fail = (problem: string): never => {
      throw new UnsafeManifestError(`${name} ${path}: ${problem}`);
    };
    const local = el.localName ?? el.nodeName;
    for (let i = 0; i < el.attributes.length; i++) {
      const a = el.attributes.item(i)!;
      if (a.namespaceURI === XLINK_NS || /(^|:)href$/i.test(a.name)) fail(`xlink attribute ${a.name} is not allowed (remote elements)`);
    }
    if (DASH_REFUSED.has(local)) fail(`${local} is not allowed (it sends players to another MPD)`);
    if (local === 'UTCTiming' && !UTC_DIRECT.has(el.getAttribute('schemeIdUri') ?? '')) {
      fail('UTCTiming other than urn:mpeg:dash:utc:direct sends players to a time server');
    }
    if (local === 'EventStream' || local === 'InbandEventStream') {
      if ((el.getAttribute('schemeIdUri') ?? '') === CALLBACK_SCHEME) fail('callback events make players request a URL');
    }
    for (const attrName of DASH_URI_ATTRIBUTES[local] ?? []) {
      if (!el.hasAttribute(attrName)) continue;
      const p = uriProblem(el.getAttribute(attrName) ?? '', own, opts.relative);
      if (p) fail(`@${attrName}: ${p}`);
    }
    if (DASH_URI_TEXT.has(local)) {
      const p = uriProblem((el.textContent ?? '').trim(), own, opts.relative);
      if (p) fail(p);
    }
    // Alternative BaseURLs are other hosts by definition: players fail over to them with our tokens.
    const bases = childElements(el).filter((c) => (c.localName ?? c.nodeName) === 'BaseURL');
    if (bases.length > 1 && !bases.every((b) => own?.((b.textContent ?? '').trim()))) {
      fail('more than one BaseURL');
    }
    const seen = new Map<string, number>();
    for (const c of childElements(el)) {
      const cl = c.localName ?? c.nodeName;
      const k = (seen.get(cl) ?? 0) + 1;
      seen.set(cl, k);
      visit(c, `${path}/${cl}[${k}]`);
    }
  };
  visit(root, root.localName ?? root.nodeName);
}

/**
 * Parses XML strictly: any parser error, a duplicate attribute included, refuses the text, so
 * what a manifest means never depends on how a lenient parser repaired it. `refuse` turns the
 * reason into the caller's own error.
 */
export function parseStrictXml(text: string, refuse: (reason: string) => Error): Document {
  try {
    return new DOMParser({
      onError: (level: string, msg: string) => {
        if (level !== 'warning') throw new Error(msg);
      },
    }).parseFromString(text, 'text/xml');
  } catch (err) {
    throw refuse(`not well-formed XML: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** Parses an MPD (well-formed XML only; a duplicate attribute is a fatal error) and checks it. */
export function checkDashMpd(text: string, opts: ManifestSafetyOptions = {}): Document {
  const doc = parseStrictXml(text, (why) => new UnsafeManifestError(`${opts.name ?? 'MPD'}: ${why}`));
  checkDashDocument(doc, opts);
  return doc;
}
