import { DOMParser, XMLSerializer, type Document, type Element } from '@xmldom/xmldom';
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

export function rewriteMpd(text: string, opts: DashRewriteOptions): string {
  if (opts.edges.length === 0) throw new ManifestRewriteError('no edge to offer');
  let doc: Document;
  try {
    doc = new DOMParser({ onError: (level, msg) => { if (level !== 'warning') throw new Error(msg); } }).parseFromString(text, 'application/xml');
  } catch (err) {
    throw new ManifestRewriteError(`MPD is not well-formed XML: ${(err as Error).message}`);
  }
  const mpd = doc.documentElement;
  if (!mpd || mpd.localName !== 'MPD') throw new ManifestRewriteError('not an MPD');
  if (mpd.getAttribute('type') === 'dynamic') throw new ManifestRewriteError('dynamic (live) MPDs are not supported: VOD only');
  const ns = mpd.namespaceURI;
  const sign = (file: string) => `${file}?${opts.signedQuery(file)}`;

  let mpdBase = dirOf(opts.manifest);
  for (const b of children(mpd, 'BaseURL')) {
    if (b === children(mpd, 'BaseURL')[0]) mpdBase = foldBase(mpdBase, b);
    mpd.removeChild(b);
  }
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
        rewriteRepresentation(doc, ns, rep, aBase, [pTemplate, aTemplate], pList ?? aList, periodSec, sign);
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
  opts.edges.forEach((edge, i) => {
    const b = doc.createElementNS(ns, 'BaseURL');
    b.setAttribute('serviceLocation', edge.id);
    b.setAttributeNS(DVB_NS, 'dvb:priority', String(i + 1));
    b.setAttributeNS(DVB_NS, 'dvb:weight', '1');
    b.appendChild(doc.createTextNode(`${edge.url}/c/${opts.title}/`));
    mpd.insertBefore(b, anchor);
    mpd.insertBefore(doc.createTextNode('\n\t'), anchor);
  });
  const cs = doc.createElementNS(ns, 'ContentSteering');
  cs.setAttribute('defaultServiceLocation', opts.edges[0]!.id);
  cs.setAttribute('queryBeforeStart', 'false');
  cs.appendChild(doc.createTextNode(opts.steeringUri));
  mpd.insertBefore(cs, periods[0] ?? null);
  mpd.insertBefore(doc.createTextNode('\n\t'), periods[0] ?? null);

  const xml = new XMLSerializer().serializeToString(doc);
  return xml.startsWith('<?xml') ? xml : `<?xml version="1.0" encoding="utf-8"?>\n${xml}`;
}

function rewriteRepresentation(
  doc: Document,
  ns: string | null,
  rep: Element,
  aBase: string,
  inherited: Array<Element | undefined>,
  inheritedList: Element | undefined,
  periodSec: number | undefined,
  sign: (file: string) => string,
): void {
  const repId = rep.getAttribute('id') ?? '';
  const bandwidth = rep.getAttribute('bandwidth') ?? undefined;
  const repBaseEl = child(rep, 'BaseURL');
  const repBaseText = (repBaseEl?.textContent ?? '').trim();
  const repTemplate = child(rep, 'SegmentTemplate');
  const chain = [...inherited, repTemplate].filter((e): e is Element => e !== undefined);

  // The folder references resolve against: a Representation BaseURL may add a folder.
  const base = repBaseText !== '' && (repBaseText.endsWith('/') || chain.length > 0) ? foldBase(aBase, repBaseEl) : aBase;
  const file = (ref: string) => resolveInTitle(base, ref);

  if (chain.length > 0) {
    const tmpl = new Map<string, string>();
    let timeline: Element | undefined;
    for (const t of chain) {
      for (const a of TEMPLATE_ATTRS) if (t.hasAttribute(a)) tmpl.set(a, t.getAttribute(a)!);
      timeline = child(t, 'SegmentTimeline') ?? timeline;
    }
    const media = tmpl.get('media');
    if (!media) throw new ManifestRewriteError(`Representation ${repId}: SegmentTemplate without @media`);
    const list = doc.createElementNS(ns, 'SegmentList');
    for (const a of ['timescale', 'duration', 'startNumber', 'presentationTimeOffset']) {
      const v = tmpl.get(a);
      if (v !== undefined) list.setAttribute(a, v);
    }
    const init = tmpl.get('initialization');
    if (init) {
      const i = doc.createElementNS(ns, 'Initialization');
      i.setAttribute('sourceURL', sign(file(fillTemplate(init, { RepresentationID: repId, Bandwidth: bandwidth }))));
      list.appendChild(i);
    }
    const segments = segmentsOf(tmpl, timeline, periodSec);
    if (timeline) {
      // One S per SegmentURL, never @r: dash.js 5.2 picks a SegmentList's SegmentURL by the
      // index of the S element, not of the segment, so `<S d=".." r="5"/>` would replay the
      // first segment six times. One S each is the same timeline in every reading.
      const expanded = doc.createElementNS(ns, 'SegmentTimeline');
      for (const seg of segments) {
        const el = doc.createElementNS(ns, 'S');
        el.setAttribute('t', String(seg.time));
        el.setAttribute('d', String(seg.duration));
        expanded.appendChild(el);
      }
      list.appendChild(expanded);
    }
    for (const s of segments) {
      const u = doc.createElementNS(ns, 'SegmentURL');
      u.setAttribute('media', sign(file(fillTemplate(media, { RepresentationID: repId, Bandwidth: bandwidth, Number: s.number, Time: s.time }))));
      list.appendChild(u);
    }
    if (repTemplate) rep.replaceChild(list, repTemplate);
    else rep.appendChild(list);
    if (repBaseEl) rep.removeChild(repBaseEl);
    return;
  }

  const list = child(rep, 'SegmentList') ?? (inheritedList ? (inheritedList.cloneNode(true) as Element) : undefined);
  if (list) {
    // Segments named in the list are signed; ranges without media use the Representation's file.
    let needsFile = false;
    for (const init of children(list, 'Initialization')) {
      const src = init.getAttribute('sourceURL');
      if (src) init.setAttribute('sourceURL', sign(file(src)));
      else needsFile = true;
    }
    for (const u of children(list, 'SegmentURL')) {
      const m = u.getAttribute('media');
      if (m) u.setAttribute('media', sign(file(m)));
      else needsFile = true;
    }
    if (!child(rep, 'SegmentList')) rep.appendChild(list);
    if (repBaseEl && !repBaseText.endsWith('/') && repBaseText !== '' && needsFile) {
      replaceText(doc, repBaseEl, sign(resolveInTitle(aBase, repBaseText)));
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
  replaceText(doc, repBaseEl, sign(resolveInTitle(aBase, repBaseText)));
}

function replaceText(doc: Document, el: Element, text: string): void {
  while (el.firstChild) el.removeChild(el.firstChild);
  el.appendChild(doc.createTextNode(text));
  for (const a of ['serviceLocation', 'dvb:priority', 'dvb:weight']) if (el.hasAttribute(a)) el.removeAttribute(a);
}
