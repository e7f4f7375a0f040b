import { XMLSerializer, type Document, type Element } from '@xmldom/xmldom';
import { UnsafeManifestError, checkDashDocument, parseStrictXml } from '../common/manifest-safety.js';
import { ManifestRewriteError, dirOf, hasScheme, resolveInTitle } from './manifest-paths.js';

/**
 * DASH MPD rewriting (pure, VOD only: a dynamic MPD is refused).
 *
 * - `<ContentSteering>` points players that support DASH-IF content steering at steering.
 * - One MPD-level `<BaseURL serviceLocation=edge dvb:priority=rank dvb:weight=1>` per ranked
 *   edge: `http://edge/c/{title}/`. Players without content steering (dash.js 4.0) fail over
 *   between them by DVB priority.
 * - Tokens are per file and a SegmentTemplate cannot carry one per segment, so every
 *   SegmentTemplate (SegmentTimeline or @duration) is expanded into a SegmentList whose
 *   Initialization@sourceURL and SegmentURL@media are signed references relative to the
 *   MPD-level BaseURLs (a token covers the path, not the host, so one works on every edge).
 * - SegmentBase (a single file with indexRange): the Representation's BaseURL becomes the
 *   file's signed relative reference, resolved against each MPD-level BaseURL.
 * - Intermediate (Period/AdaptationSet) BaseURLs are folded into those references and removed.
 *
 * Three steps, so that a long title costs little per play (steering caches the first two):
 * - `planMpd` (once per manifest version): parse, check with the shared manifest-safety
 *   validator, expand, and serialise with markers where signed references, per-play query
 *   parameters, the edge BaseURLs and the steering URI go. The expanded SegmentLists are built
 *   as strings: tens of thousands of DOM nodes made a 2 h title cost over a second.
 * - `signMpd` (once per token period): markers of files become signed references.
 * - `renderMpd` (per play): the client's ranked edges and per-play parameters are filled in.
 * Before serialising, the document is checked again: every URI in it must be one of ours.
 */

export const DVB_NS = 'urn:dvb:dash:dash-extensions:2014-1';
const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';

export interface DashRewriteOptions {
  title: string;
  /** Path of the MPD inside the title. */
  manifest: string;
  /** Edges in rank order (first = defaultServiceLocation). */
  edges: ReadonlyArray<{ id: string; url: string }>;
  /** Absolute URL of the steering manifest. */
  steeringUri: string;
  /** The signed query (e=..&k=..&t=..) for a file inside the title. */
  signedQuery: (file: string) => string;
}

function children(el: Element, name: string): Element[] {
  const out: Element[] = [];
  for (let n = el.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === 1 && (n as Element).localName === name) out.push(n as Element);
  }
  return out;
}

function child(el: Element | undefined, name: string): Element | undefined {
  return el ? children(el, name)[0] : undefined;
}

/** ISO 8601 duration (PnDTnHnMnS subset used by MPDs) → seconds. */
export function parseIsoDuration(s: string | null | undefined): number | undefined {
  if (!s) return undefined;
  const m = /^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(s.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, sec] = m.map((x) => (x === undefined ? 0 : Number(x)));
  return y! * 365 * 86400 + mo! * 30 * 86400 + d! * 86400 + h! * 3600 + mi! * 60 + sec!;
}

/** Resolves a BaseURL value against a folder: a folder result ends in '/'. */
function foldBase(base: string, el: Element | undefined): string {
  if (!el) return base;
  const text = (el.textContent ?? '').trim();
  if (text === '' || text === './') return base;
  if (hasScheme(text) || text.startsWith('/')) throw new ManifestRewriteError(`BaseURL "${text}" is not relative to the title`);
  const dir = text.endsWith('/') ? text : dirOf(text);
  if (dir === '') return base;
  return `${resolveInTitle(base, dir.replace(/\/$/, ''))}/`;
}

/** Fills $RepresentationID$, $Number$, $Time$, $Bandwidth$ (with %0Nd widths) and $$. */
export function fillTemplate(tpl: string, vars: { RepresentationID: string; Number?: number; Time?: number; Bandwidth?: string }): string {
  return tpl.replace(/\$(RepresentationID|Number|Time|Bandwidth|SubNumber)?(%0(\d+)d)?\$/g, (all, id: string | undefined, _f, width: string | undefined) => {
    if (id === undefined) return '$';
    const v = (vars as Record<string, string | number | undefined>)[id];
    if (v === undefined) throw new ManifestRewriteError(`template identifier $${id}$ has no value`);
    const text = String(v);
    return width ? text.padStart(Number(width), '0') : text;
  });
}

interface Segment {
  number: number;
  time: number;
  /** Duration in timescale units. */
  duration: number;
}

/** The segments of a template: from its SegmentTimeline, or from @duration over the period. */
function segmentsOf(tmpl: Map<string, string>, timeline: Element | undefined, periodSec: number | undefined): Segment[] {
  const timescale = Number(tmpl.get('timescale') ?? '1');
  const startNumber = Number(tmpl.get('startNumber') ?? '1');
  const pto = Number(tmpl.get('presentationTimeOffset') ?? '0');
  const out: Segment[] = [];
  let number = startNumber;
  if (timeline) {
    const ss = children(timeline, 'S');
    let t = 0;
    ss.forEach((s, i) => {
      if (s.hasAttribute('t')) t = Number(s.getAttribute('t'));
      const d = Number(s.getAttribute('d'));
      if (!(d > 0)) throw new ManifestRewriteError('SegmentTimeline S without a positive @d');
      let r = Number(s.getAttribute('r') ?? '0');
      if (r < 0) {
        const next = ss[i + 1];
        const end = next?.hasAttribute('t') ? Number(next.getAttribute('t')) : periodSec !== undefined ? pto + periodSec * timescale : undefined;
        if (end === undefined) throw new ManifestRewriteError('open-ended SegmentTimeline repeat without a period duration');
        r = Math.ceil((end - t) / d) - 1;
      }
      for (let k = 0; k <= r; k++) {
        out.push({ number: number++, time: t, duration: d });
        t += d;
      }
    });
    return out;
  }
  const duration = Number(tmpl.get('duration'));
  if (!(duration > 0)) throw new ManifestRewriteError('SegmentTemplate with neither SegmentTimeline nor @duration');
  if (periodSec === undefined) throw new ManifestRewriteError('SegmentTemplate@duration without a period duration');
  const count = Math.ceil((periodSec * timescale) / duration - 1e-9);
  for (let k = 0; k < count; k++) out.push({ number: number++, time: pto + k * duration, duration });
  return out;
}

const TEMPLATE_ATTRS = ['timescale', 'duration', 'startNumber', 'presentationTimeOffset', 'initialization', 'media', 'index', 'availabilityTimeOffset'];

// Markers: private-use characters, refused in source MPDs, never escaped by the serializer.
const M0 = '\uE000';
const M1 = '\uE001';
const MARKER_RE = /\uE000([FTEDUL])(\d*)\uE001/g;

/** A slot of a plan: a file to sign (index into `files`) or something filled per play. */
export type PlanSlot = { kind: 'file'; index: number } | { kind: PlaySlot };
/** Filled per play: per-play query parameters, the edge BaseURLs, the default edge, the steering URI. */
export type PlaySlot = 'query' | 'edges' | 'default' | 'steering';

/** An MPD rewritten except for what depends on time (tokens) and on the client (ranking). */
export interface MpdPlan {
  title: string;
  /** Text between slots: `parts.length === slots.length + 1`. */
  parts: string[];
  slots: PlanSlot[];
  /** Title-relative files that get a signed reference. */
  files: string[];
  /** Namespace prefix of MPD elements ('' for the default namespace). */
  prefix: string;
  /** Characters of text held (for cache accounting). */
  size: number;
}

/** A plan with every reference signed: only per-play slots remain. */
export interface SignedMpd {
  title: string;
  /** UTF-8 already: a play copies bytes instead of encoding megabytes of text. */
  parts: Buffer[];
  slots: PlaySlot[];
  prefix: string;
  size: number;
}

export interface PlanOptions {
  title: string;
  /** Path of the MPD inside the title. */
  manifest: string;
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&quot;'));
}

/** Parses, checks and expands an MPD into a plan (see the module comment). */
export function planMpd(text: string, opts: PlanOptions): MpdPlan {
  if (text.includes(M0) || text.includes(M1)) throw new ManifestRewriteError('MPD holds private-use marker characters');
  const doc = parseStrictXml(text, (why) => new ManifestRewriteError(`MPD is ${why}`));
  const mpd = doc.documentElement;
  if (!mpd || mpd.localName !== 'MPD') throw new ManifestRewriteError('not an MPD');
  if (mpd.getAttribute('type') === 'dynamic') throw new ManifestRewriteError('dynamic (live) MPDs are not supported: VOD only');
  // The same check as at ingest: a catalog written before it, or by hand, is not trusted.
  try {
    checkDashDocument(doc, { name: opts.manifest });
  } catch (err) {
    if (err instanceof UnsafeManifestError) throw new ManifestRewriteError(err.message);
    throw err;
  }
  const ns = mpd.namespaceURI;
  const prefix = mpd.prefix ?? '';
  const files: string[] = [];
  const fileIndex = new Map<string, number>();
  /**
   * A signed reference to `file`; `perPlay` appends the per-play parameters (trace, play id).
   * Only the first reference of each Representation carries them (its Initialization, else its
   * first segment): a player fetches it before anything else of that Representation, so edges
   * see every play, and the tens of thousands of segment references stay the same for every
   * play of a token period, which is what makes the rendered MPD cacheable and cheap.
   */
  const ref = (file: string, perPlay = false) => {
    let i = fileIndex.get(file);
    if (i === undefined) {
      i = files.length;
      files.push(file);
      fileIndex.set(file, i);
    }
    return perPlay ? `${M0}F${i}${M1}${M0}T${M1}` : `${M0}F${i}${M1}`;
  };
  const chunks: string[] = [];

  let mpdBase = dirOf(opts.manifest);
  const mpdBases = children(mpd, 'BaseURL');
  if (mpdBases[0]) mpdBase = foldBase(mpdBase, mpdBases[0]);
  for (const b of mpdBases) mpd.removeChild(b);
  // Ours replaces any the packager wrote.
  for (const cs of children(mpd, 'ContentSteering')) mpd.removeChild(cs);
  const presentationSec = parseIsoDuration(mpd.getAttribute('mediaPresentationDuration'));
  const periods = children(mpd, 'Period');
  periods.forEach((period, pi) => {
    const start = parseIsoDuration(period.getAttribute('start')) ?? 0;
    const nextStart = parseIsoDuration(periods[pi + 1]?.getAttribute('start'));
    const periodSec =
      parseIsoDuration(period.getAttribute('duration')) ??
      (nextStart !== undefined ? nextStart - start : presentationSec !== undefined ? presentationSec - start : undefined);
    const pBase = foldBase(mpdBase, child(period, 'BaseURL'));
    children(period, 'BaseURL').forEach((b) => period.removeChild(b));
    const pTemplate = child(period, 'SegmentTemplate');
    const pList = child(period, 'SegmentList');
    for (const as of children(period, 'AdaptationSet')) {
      const aBase = foldBase(pBase, child(as, 'BaseURL'));
      children(as, 'BaseURL').forEach((b) => as.removeChild(b));
      const aTemplate = child(as, 'SegmentTemplate');
      const aList = child(as, 'SegmentList');
      for (const rep of children(as, 'Representation')) {
        rewriteRepresentation({ doc, ns, prefix, ref, chunks }, rep, aBase, [pTemplate, aTemplate], pList ?? aList, periodSec);
      }
      if (aTemplate) as.removeChild(aTemplate);
      if (aList) as.removeChild(aList);
    }
    if (pTemplate) period.removeChild(pTemplate);
    if (pList) period.removeChild(pList);
  });

  // Edge BaseURLs (after ProgramInformation, as the schema orders them) and ContentSteering.
  mpd.setAttributeNS(XMLNS_NS, 'xmlns:dvb', DVB_NS);
  let anchor: Element | null = null;
  for (let n = mpd.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === 1 && (n as Element).localName !== 'ProgramInformation') {
      anchor = n as Element;
      break;
    }
  }
  mpd.insertBefore(doc.createTextNode(`${M0}E${M1}`), anchor);
  const cs = doc.createElementNS(ns, prefix ? `${prefix}:ContentSteering` : 'ContentSteering');
  cs.setAttribute('defaultServiceLocation', `${M0}D${M1}`);
  // true: dash.js (5.x) asks steering before playback and then every TTL. With false it waits
  // for its PLAYBACK_STARTED event, which an autoplaying player may never emit — it then never
  // asked steering at all, so it neither sent its pathway nor followed a new priority.
  cs.setAttribute('queryBeforeStart', 'true');
  cs.appendChild(doc.createTextNode(`${M0}U${M1}`));
  mpd.insertBefore(cs, periods[0] ?? null);
  mpd.insertBefore(doc.createTextNode('\n\t'), periods[0] ?? null);

  // Steering never emits a URI it did not build: every one left must be one of our markers.
  const ours = /^\uE000[FU]\d*\uE001/;
  try {
    checkDashDocument(doc, { name: opts.manifest, isOwn: (u) => ours.test(u), relative: false });
  } catch (err) {
    if (err instanceof UnsafeManifestError) throw new ManifestRewriteError(`after rewriting: ${err.message}`);
    throw err;
  }

  let xml = new XMLSerializer().serializeToString(doc);
  if (!xml.startsWith('<?xml')) xml = `<?xml version="1.0" encoding="utf-8"?>\n${xml}`;
  const parts: string[] = [];
  const slots: PlanSlot[] = [];
  let size = 0;
  let pending = '';
  const flush = (upTo: string) => {
    pending += upTo;
  };
  const emit = (slot: PlanSlot) => {
    parts.push(pending);
    size += pending.length;
    pending = '';
    slots.push(slot);
  };
  const walk = (s: string, allowChunks: boolean) => {
    let at = 0;
    for (const m of s.matchAll(MARKER_RE)) {
      flush(s.slice(at, m.index));
      at = m.index + m[0].length;
      const [, kind, num] = m;
      if (kind === 'L' && allowChunks) walk(chunks[Number(num)]!, false);
      else if (kind === 'F') emit({ kind: 'file', index: Number(num) });
      else if (kind === 'T') emit({ kind: 'query' });
      else if (kind === 'E') emit({ kind: 'edges' });
      else if (kind === 'D') emit({ kind: 'default' });
      else if (kind === 'U') emit({ kind: 'steering' });
      else throw new ManifestRewriteError('misplaced marker');
    }
    flush(s.slice(at));
  };
  walk(xml, true);
  parts.push(pending);
  size += pending.length;
  return { title: opts.title, parts, slots, files, prefix, size };
}

/**
 * Signs every file of a plan. `signedQuery(file)` is the query (`e=..&k=..&t=..`) for one file;
 * `yieldEvery` files, `pause()` is awaited so that a long title does not hold the event loop.
 */
export async function signMpd(
  plan: MpdPlan,
  signedQuery: (file: string) => string,
  opts: { yieldEvery?: number; pause?: () => Promise<void> } = {},
): Promise<SignedMpd> {
  const refs = new Array<string>(plan.files.length);
  const every = opts.yieldEvery ?? Infinity;
  for (let i = 0; i < plan.files.length; i++) {
    if (i > 0 && i % every === 0 && opts.pause) await opts.pause();
    const f = plan.files[i]!;
    refs[i] = escapeXml(`${f}?${signedQuery(f)}`);
  }
  return joinSigned(plan, refs);
}

/** `signMpd` without pauses, for callers that sign a few files. */
export function signMpdSync(plan: MpdPlan, signedQuery: (file: string) => string): SignedMpd {
  return joinSigned(plan, plan.files.map((f) => escapeXml(`${f}?${signedQuery(f)}`)));
}

function joinSigned(plan: MpdPlan, refs: string[]): SignedMpd {
  const parts: Buffer[] = [];
  const slots: PlaySlot[] = [];
  let pieces: string[] = [plan.parts[0]!];
  let size = 0;
  const close = () => {
    const b = Buffer.from(pieces.join(''), 'utf8');
    parts.push(b);
    size += b.length;
    pieces = [];
  };
  plan.slots.forEach((slot, i) => {
    if (slot.kind === 'file') {
      pieces.push(refs[slot.index]!);
    } else {
      close();
      slots.push(slot.kind);
    }
    pieces.push(plan.parts[i + 1]!);
  });
  close();
  return { title: plan.title, parts, slots, prefix: plan.prefix, size };
}

export interface RenderOptions {
  /** Edges in rank order (first = defaultServiceLocation). */
  edges: ReadonlyArray<{ id: string; url: string }>;
  /** Absolute URL of the steering manifest. */
  steeringUri: string;
  /** Per-play parameters (`&tp=..`), appended to each Representation's first reference; or ''. */
  query: string;
}

/** Fills a signed MPD for one play: the client's ranked edges and per-play parameters. */
export function renderMpd(signed: SignedMpd, opts: RenderOptions): Buffer {
  if (opts.edges.length === 0) throw new ManifestRewriteError('no edge to offer');
  const baseEl = signed.prefix ? `${signed.prefix}:BaseURL` : 'BaseURL';
  const edges = opts.edges
    .map(
      (e, i) =>
        `<${baseEl} serviceLocation="${escapeXml(e.id)}" dvb:priority="${i + 1}" dvb:weight="1">${escapeXml(`${e.url}/c/${signed.title}/`)}</${baseEl}>\n\t`,
    )
    .join('');
  const fill: Record<PlaySlot, Buffer> = {
    query: Buffer.from(escapeXml(opts.query)),
    edges: Buffer.from(edges),
    default: Buffer.from(escapeXml(opts.edges[0]!.id)),
    steering: Buffer.from(escapeXml(opts.steeringUri)),
  };
  const out = new Array<Buffer>(signed.parts.length * 2 - 1);
  out[0] = signed.parts[0]!;
  for (let i = 0; i < signed.slots.length; i++) {
    out[2 * i + 1] = fill[signed.slots[i]!];
    out[2 * i + 2] = signed.parts[i + 1]!;
  }
  return Buffer.concat(out);
}

/** All three steps at once (tests, and callers that do not cache). */
export function rewriteMpd(text: string, opts: DashRewriteOptions): string {
  if (opts.edges.length === 0) throw new ManifestRewriteError('no edge to offer');
  const plan = planMpd(text, { title: opts.title, manifest: opts.manifest });
  return renderMpd(signMpdSync(plan, opts.signedQuery), { edges: opts.edges, steeringUri: opts.steeringUri, query: '' }).toString('utf8');
}

interface PlanContext {
  doc: Document;
  ns: string | null;
  prefix: string;
  /** Marker of a signed reference to a file, with the per-play parameters or not. */
  ref: (file: string, perPlay?: boolean) => string;
  /** Pre-built XML inlined at `L` markers. */
  chunks: string[];
}

function rewriteRepresentation(
  ctx: PlanContext,
  rep: Element,
  aBase: string,
  inherited: Array<Element | undefined>,
  inheritedList: Element | undefined,
  periodSec: number | undefined,
): void {
  const { doc, ns, ref } = ctx;
  const el = (name: string) => (ctx.prefix ? `${ctx.prefix}:${name}` : name);
  const repId = rep.getAttribute('id') ?? '';
  const bandwidth = rep.getAttribute('bandwidth') ?? undefined;
  const repBaseEl = child(rep, 'BaseURL');
  const repBaseText = (repBaseEl?.textContent ?? '').trim();
  const repTemplate = child(rep, 'SegmentTemplate');
  const chain = [...inherited, repTemplate].filter((e): e is Element => e !== undefined);

  // The folder references resolve against: a Representation BaseURL may add a folder.
  const base = repBaseText !== '' && (repBaseText.endsWith('/') || chain.length > 0) ? foldBase(aBase, repBaseEl) : aBase;
  const file = (r: string) => resolveInTitle(base, r);

  if (chain.length > 0) {
    const tmpl = new Map<string, string>();
    let timeline: Element | undefined;
    for (const t of chain) {
      for (const a of TEMPLATE_ATTRS) if (t.hasAttribute(a)) tmpl.set(a, t.getAttribute(a)!);
      timeline = child(t, 'SegmentTimeline') ?? timeline;
    }
    const media = tmpl.get('media');
    if (!media) throw new ManifestRewriteError(`Representation ${repId}: SegmentTemplate without @media`);
    const list = doc.createElementNS(ns, el('SegmentList'));
    for (const a of ['timescale', 'duration', 'startNumber', 'presentationTimeOffset']) {
      const v = tmpl.get(a);
      if (v !== undefined) list.setAttribute(a, v);
    }
    const init = tmpl.get('initialization');
    if (init) {
      const i = doc.createElementNS(ns, el('Initialization'));
      i.setAttribute('sourceURL', ref(file(fillTemplate(init, { RepresentationID: repId, Bandwidth: bandwidth })), true));
      list.appendChild(i);
    }
    const segments = segmentsOf(tmpl, timeline, periodSec);
    const xml: string[] = [];
    if (timeline) {
      // One S per SegmentURL, never @r: dash.js 5.2 picks a SegmentList's SegmentURL by the
      // index of the S element, not of the segment, so `<S d=".." r="5"/>` would replay the
      // first segment six times. One S each is the same timeline in every reading.
      xml.push(`<${el('SegmentTimeline')}>`);
      for (const seg of segments) xml.push(`<${el('S')} t="${seg.time}" d="${seg.duration}"/>`);
      xml.push(`</${el('SegmentTimeline')}>`);
    }
    const su = el('SegmentURL');
    segments.forEach((s, k) => {
      const f = file(fillTemplate(media, { RepresentationID: repId, Bandwidth: bandwidth, Number: s.number, Time: s.time }));
      xml.push(`<${su} media="${ref(f, !init && k === 0)}"/>`);
    });
    ctx.chunks.push(xml.join(''));
    list.appendChild(doc.createTextNode(`${M0}L${ctx.chunks.length - 1}${M1}`));
    if (repTemplate) rep.replaceChild(list, repTemplate);
    else rep.appendChild(list);
    if (repBaseEl) rep.removeChild(repBaseEl);
    return;
  }

  const list = child(rep, 'SegmentList') ?? (inheritedList ? (inheritedList.cloneNode(true) as Element) : undefined);
  if (list) {
    // Segments named in the list are signed; ranges without media use the Representation's file.
    let needsFile = false;
    let perPlay = true; // until the first reference of this Representation has them
    for (const init of children(list, 'Initialization')) {
      const src = init.getAttribute('sourceURL');
      if (src) {
        init.setAttribute('sourceURL', ref(file(src), perPlay));
        perPlay = false;
      } else needsFile = true;
    }
    for (const u of children(list, 'SegmentURL')) {
      const m = u.getAttribute('media');
      if (m) {
        u.setAttribute('media', ref(file(m), perPlay));
        perPlay = false;
      } else needsFile = true;
    }
    if (!child(rep, 'SegmentList')) rep.appendChild(list);
    if (repBaseEl && !repBaseText.endsWith('/') && repBaseText !== '' && needsFile) {
      replaceText(doc, repBaseEl, ref(resolveInTitle(aBase, repBaseText), true));
    } else if (repBaseEl) {
      rep.removeChild(repBaseEl);
    }
    return;
  }

  // SegmentBase or a bare single-file Representation: its BaseURL names the file.
  if (!repBaseEl || repBaseText === '' || repBaseText.endsWith('/')) {
    throw new ManifestRewriteError(`Representation ${repId} names no media (no template, list or file BaseURL)`);
  }
  for (const extra of children(rep, 'BaseURL').slice(1)) rep.removeChild(extra);
  replaceText(doc, repBaseEl, ref(resolveInTitle(aBase, repBaseText), true));
}

function replaceText(doc: Document, el: Element, text: string): void {
  while (el.firstChild) el.removeChild(el.firstChild);
  el.appendChild(doc.createTextNode(text));
  for (const a of ['serviceLocation', 'dvb:priority', 'dvb:weight']) if (el.hasAttribute(a)) el.removeAttribute(a);
}
