import { UnsafeManifestError, checkHlsPlaylist } from '../common/manifest-safety.js';
import { ManifestError } from './errors.js';
import { resolveRef } from './ref-path.js';

/**
 * Reference extraction from HLS playlists (RFC 8216bis): which files a playlist needs.
 * Pure: text in, title-relative paths out. Rewriting playlists is steering's job, not this one's.
 */

/** A byte range of a file a playlist addresses: [offset, offset + length). */
export interface RefByteRange {
  offset: number;
  length: number;
}

export interface HlsReference {
  /** Title-relative path, resolved against the playlist's own path. */
  path: string;
  /** `playlist`: another playlist to read in turn; `media`: bytes a player fetches. */
  kind: 'playlist' | 'media';
  /** The tag that named it (`EXTINF` for a plain segment line), for error messages. */
  tag: string;
  /** Present when the playlist addresses only part of the file. */
  byteRange?: RefByteRange;
}

/** Segments a title may still list; shared by the extraction of all its manifests. */
export interface SegmentBudget {
  readonly max: number;
  left: number;
}

/** A budget of origin.maxSegmentsPerTitle segments for one title. */
export function segmentBudget(max: number): SegmentBudget {
  return { max, left: max };
}

/** Takes `n` segments from the budget; over it is an error naming the limit and where it was hit. */
export function spendSegments(budget: SegmentBudget | undefined, n: number, where: string): void {
  if (!budget) return;
  budget.left -= n;
  if (budget.left < 0) {
    throw new ManifestError(`${where}: the title has more than ${budget.max} segments (origin.maxSegmentsPerTitle = ${budget.max})`);
  }
}

export interface ExtractOptions {
  /** Counted down by every media segment found; absent: no limit. */
  segments?: SegmentBudget;
}

export interface HlsPlaylistRefs {
  /** Multivariant playlists list variants and renditions; media playlists list segments. */
  type: 'multivariant' | 'media';
  refs: HlsReference[];
}

/** Tags whose URI attribute names another playlist. */
const PLAYLIST_URI_TAGS = new Set(['EXT-X-MEDIA', 'EXT-X-I-FRAME-STREAM-INF', 'EXT-X-IMAGE-STREAM-INF']);
/** Tags of a multivariant playlist; seeing one of them decides the type. */
const MULTIVARIANT_TAGS = new Set([...PLAYLIST_URI_TAGS, 'EXT-X-STREAM-INF', 'EXT-X-SESSION-DATA', 'EXT-X-SESSION-KEY']);
/** Tags only a media playlist has. */
const MEDIA_TAGS = new Set(['EXTINF', 'EXT-X-TARGETDURATION', 'EXT-X-MAP', 'EXT-X-BYTERANGE', 'EXT-X-PART']);

/** Parses an attribute list (`A=1,B="x,y",C=z`) into a map; quoted values lose their quotes. */
export function parseAttributes(list: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /\s*([A-Z0-9-]+)=("[^"]*"|[^,]*)\s*(?:,|$)/gy;
  let m: RegExpExecArray | null;
  while (re.lastIndex < list.length && (m = re.exec(list)) !== null) {
    const v = m[2]!;
    out.set(m[1]!, v.startsWith('"') ? v.slice(1, -1) : v.trim());
    if (m[0].length === 0) break;
  }
  return out;
}

/** `n[@o]` of EXT-X-BYTERANGE or a BYTERANGE attribute. */
function parseByteRange(v: string, where: string): { length: number; offset?: number } {
  const m = /^(\d{1,15})(?:@(\d{1,15}))?$/.exec(v.trim());
  if (!m) throw new ManifestError(`${where}: bad byte range "${v}"`);
  return { length: Number(m[1]), offset: m[2] === undefined ? undefined : Number(m[2]) };
}

function splitTag(line: string): { name: string; value: string } {
  const colon = line.indexOf(':');
  return colon < 0 ? { name: line.slice(1), value: '' } : { name: line.slice(1, colon), value: line.slice(colon + 1) };
}

/**
 * Every file an HLS playlist at `selfPath` references, in playlist order, duplicates kept
 * (a byte-range playlist names its one file once per segment; each has its own range).
 * Key URIs with a scheme (`skd://`, `https://` key servers) are external and skipped; every
 * other absolute or escaping URI is an error, as are live-only constructs we cannot ingest.
 */
export function extractHlsReferences(text: string, selfPath: string, opts: ExtractOptions = {}): HlsPlaylistRefs {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  if (lines[0]?.trim() !== '#EXTM3U') throw new ManifestError(`${selfPath}: not an HLS playlist (no #EXTM3U first line)`);
  // The shared check first: what it refuses, steering refuses too, so both read one meaning.
  try {
    checkHlsPlaylist(text, { name: selfPath });
  } catch (err) {
    if (err instanceof UnsafeManifestError) throw new ManifestError(err.message);
    throw err;
  }

  let sawMultivariant = false;
  let sawMedia = false;
  const refs: HlsReference[] = [];
  let pendingStreamInf = false;
  let pendingByteRange: { length: number; offset?: number } | undefined;
  // An EXT-X-BYTERANGE without an offset continues right after the previous segment's range.
  let previous: { path: string; end: number } | undefined;

  lines.forEach((raw, i) => {
    const line = raw.trim();
    const where = `${selfPath} line ${i + 1}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      if (!line.startsWith('#EXT')) return; // a comment
      const { name, value } = splitTag(line);
      if (MULTIVARIANT_TAGS.has(name)) sawMultivariant = true;
      if (MEDIA_TAGS.has(name)) sawMedia = true;
      if (name === 'EXT-X-DEFINE' || (line.includes('{$') && /URI=/.test(line))) {
        throw new ManifestError(`${where}: variable substitution (EXT-X-DEFINE) is not supported`);
      }
      if (name === 'EXT-X-STREAM-INF') {
        pendingStreamInf = true;
        return;
      }
      if (name === 'EXT-X-BYTERANGE') {
        pendingByteRange = parseByteRange(value, where);
        return;
      }
      const attrs = value.includes('=') ? parseAttributes(value) : undefined;
      const uri = attrs?.get('URI');
      if (PLAYLIST_URI_TAGS.has(name)) {
        // EXT-X-MEDIA without URI: the rendition is muxed into the variant stream.
        if (uri !== undefined) refs.push({ path: resolveRef(selfPath, uri, where), kind: 'playlist', tag: name });
        return;
      }
      if (name === 'EXT-X-MAP') {
        if (uri === undefined) throw new ManifestError(`${where}: EXT-X-MAP without URI`);
        const path = resolveRef(selfPath, uri, where);
        const br = attrs?.get('BYTERANGE');
        if (br === undefined) {
          refs.push({ path, kind: 'media', tag: name });
        } else {
          const r = parseByteRange(br, where);
          if (r.offset === undefined) throw new ManifestError(`${where}: EXT-X-MAP BYTERANGE needs an offset`);
          refs.push({ path, kind: 'media', tag: name, byteRange: { offset: r.offset, length: r.length } });
        }
        return;
      }
      if (name === 'EXT-X-KEY' || name === 'EXT-X-SESSION-KEY') {
        if (uri === undefined || attrs?.get('METHOD') === 'NONE') return;
        if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(uri)) return; // a key server, not a file of the title
        refs.push({ path: resolveRef(selfPath, uri, where), kind: 'media', tag: name });
        return;
      }
      if (name === 'EXT-X-SESSION-DATA' || name === 'EXT-X-PART') {
        if (uri === undefined) return;
        const path = resolveRef(selfPath, uri, where);
        const br = attrs?.get('BYTERANGE');
        const r = br === undefined ? undefined : parseByteRange(br, where);
        if (r && r.offset === undefined) throw new ManifestError(`${where}: ${name} BYTERANGE needs an offset here`);
        refs.push({ path, kind: 'media', tag: name, ...(r ? { byteRange: { offset: r.offset!, length: r.length } } : {}) });
        return;
      }
      return; // EXT-X-PRELOAD-HINT, EXT-X-RENDITION-REPORT: live-only, name nothing a VOD title holds
    }

    // A URI line: a variant playlist after EXT-X-STREAM-INF, else a media segment.
    const path = resolveRef(selfPath, line, where);
    if (pendingStreamInf) {
      refs.push({ path, kind: 'playlist', tag: 'EXT-X-STREAM-INF' });
      pendingStreamInf = false;
      return;
    }
    sawMedia = true;
    spendSegments(opts.segments, 1, selfPath);
    if (pendingByteRange) {
      let offset = pendingByteRange.offset;
      if (offset === undefined) {
        if (!previous || previous.path !== path) {
          throw new ManifestError(`${where}: EXT-X-BYTERANGE without offset must follow a range of the same file`);
        }
        offset = previous.end;
      }
      refs.push({ path, kind: 'media', tag: 'EXTINF', byteRange: { offset, length: pendingByteRange.length } });
      previous = { path, end: offset + pendingByteRange.length };
      pendingByteRange = undefined;
    } else {
      refs.push({ path, kind: 'media', tag: 'EXTINF' });
      previous = undefined;
    }
  });

  if (pendingStreamInf) throw new ManifestError(`${selfPath}: EXT-X-STREAM-INF without a URI line after it`);
  if (sawMultivariant && sawMedia) throw new ManifestError(`${selfPath}: mixes multivariant and media playlist tags`);
  return { type: sawMultivariant ? 'multivariant' : 'media', refs };
}
