import type { Element } from '@xmldom/xmldom';
import { parseStrictXml } from '../common/manifest-safety.js';

/**
 * A title's bitrate ladder as its manifests declare it, for the player-hint rule "never first
 * where the player measured far below its rendition" (player-hints.ts). Steering already reads
 * the title's manifests from the origin (catalog.ts); the ladder is read from the same text.
 *   HLS: every #EXT-X-STREAM-INF's AVERAGE-BANDWIDTH, else BANDWIDTH (bits per second);
 *   DASH: every video Representation's @bandwidth (an AdaptationSet or Representation whose
 *         contentType or mimeType says video, or that has a width) — audio is not a rendition
 *         the player steps down to.
 */

/** Bitrates (bits/s) of an HLS multivariant playlist's variants, ascending; [] for a media playlist. */
export function hlsLadder(text: string): number[] {
  const out: number[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith('#EXT-X-STREAM-INF:')) continue;
    const attrs = line.slice('#EXT-X-STREAM-INF:'.length);
    const v = attr(attrs, 'AVERAGE-BANDWIDTH') ?? attr(attrs, 'BANDWIDTH');
    if (v !== undefined && v > 0) out.push(v);
  }
  return out.sort((a, b) => a - b);
}

function attr(list: string, name: string): number | undefined {
  const m = new RegExp(`(?:^|,)${name}=(\\d+)`).exec(list);
  return m ? Number(m[1]) : undefined;
}

/** Bitrates (bits/s) of an MPD's video representations, ascending. */
export function dashLadder(text: string): number[] {
  let doc;
  try {
    doc = parseStrictXml(text, (why) => new Error(why));
  } catch {
    return [];
  }
  const out: number[] = [];
  const isVideo = (el: Element | null) =>
    el !== null && ((el.getAttribute('contentType') ?? '') === 'video' || (el.getAttribute('mimeType') ?? '').startsWith('video/') || el.hasAttribute('width'));
  const reps = doc.getElementsByTagNameNS('*', 'Representation');
  for (let i = 0; i < reps.length; i++) {
    const rep = reps[i]!;
    const set = rep.parentNode as Element | null;
    if (!isVideo(rep) && !isVideo(set)) continue;
    const bw = Number(rep.getAttribute('bandwidth'));
    if (Number.isFinite(bw) && bw > 0) out.push(bw);
  }
  return out.sort((a, b) => a - b);
}

/** The lowest rung of a manifest's ladder, or undefined when it declares none. */
export function ladderFloor(file: string, text: string): number | undefined {
  const ladder = file.endsWith('.mpd') ? dashLadder(text) : hlsLadder(text);
  return ladder[0];
}

/** What TitleLadders needs of the catalog (CatalogSource). */
export interface LadderSource {
  /** The title's top-level manifests and each file's digest, if the title is in the catalog. */
  manifestsOf(title: string): { manifests: readonly string[]; digests: ReadonlyMap<string, string> } | undefined;
  manifestText(title: string, file: string): Promise<string>;
}

/** After a failed read (origin down or slow), a title's ladder is not asked for again for this long. */
export const LADDER_RETRY_MS = 15_000;

/** A title's floor as far as it is known: read, being read, or failed until a moment. */
type LadderEntry = { kind: 'read'; floor: number | undefined } | { kind: 'reading'; done: Promise<void> } | { kind: 'failed'; until: number };

/**
 * Ladder floors per title, cached by manifest digest (a re-ingest is a new entry), read once and
 * shared by every request for the title. The lowest floor over the title's manifests: an HLS and
 * a DASH rendition of one title may differ, and the rule must hold for either player.
 *
 * Never on a request's path: a steering reload uses the floor if it is known, and a title not read
 * yet is read in the background (that reload goes without the low-throughput rule). A failed read
 * is remembered for LADDER_RETRY_MS, so an origin outage costs one attempt per title per 15 s,
 * not a wait of every reload.
 */
export class TitleLadders {
  private readonly cache = new Map<string, LadderEntry>();

  constructor(
    private readonly source: LadderSource,
    /** Monotonic ms. */
    private readonly now: () => number,
    private readonly maxEntries = 10_000,
    private readonly retryMs = LADDER_RETRY_MS,
  ) {}

  /**
   * The title's lowest rendition bitrate (bits/s) if it is known now; undefined when not (unknown
   * title, no ladder, being read, a recent failure). Starts a read when one is due.
   */
  floorNow(title: string): number | undefined {
    const m = this.source.manifestsOf(title);
    if (!m) return undefined;
    const files = m.manifests.filter((f) => f.endsWith('.m3u8') || f.endsWith('.mpd'));
    const key = JSON.stringify([title, files.map((f) => m.digests.get(f) ?? '')]);
    const e = this.cache.get(key);
    if (e?.kind === 'read') return e.floor;
    if (e?.kind === 'reading' || (e?.kind === 'failed' && this.now() < e.until)) return undefined;
    this.read(key, title, files);
    return undefined;
  }

  /** Resolves once every read under way has finished (tests). */
  async settled(): Promise<void> {
    await Promise.all([...this.cache.values()].map((e) => (e.kind === 'reading' ? e.done : undefined)));
  }

  private read(key: string, title: string, files: string[]): void {
    let failed = false;
    const one = (f: string) =>
      this.source.manifestText(title, f).then(
        (t) => ladderFloor(f, t),
        () => {
          failed = true;
          return undefined;
        },
      );
    const done = Promise.all(files.map(one)).then((floors) => {
      const known = floors.filter((x): x is number => x !== undefined);
      // A partly read ladder may miss its lowest rung: not used, tried again later.
      this.cache.set(key, failed ? { kind: 'failed', until: this.now() + this.retryMs } : { kind: 'read', floor: known.length > 0 ? Math.min(...known) : undefined });
    });
    if (this.cache.size >= this.maxEntries) this.cache.clear();
    this.cache.set(key, { kind: 'reading', done });
  }
}
