import type { Element } from '@xmldom/xmldom';
import { UnsafeManifestError, checkDashDocument, parseStrictXml } from '../common/manifest-safety.js';
import { ManifestError } from './errors.js';
import { type ExtractOptions, type RefByteRange, type SegmentBudget, spendSegments } from './hls-playlist.js';
import { resolveRef } from './ref-path.js';

/**
 * Reference extraction from DASH MPDs (ISO/IEC 23009-1): which files a static MPD needs.
 * Pure: text in, title-relative paths out. Handles BaseURL chains, SegmentBase, SegmentList
 * and SegmentTemplate ($Number$ / $Time$ from a SegmentTimeline or from @duration and the
 * period length), with attributes inherited Period → AdaptationSet → Representation.
 */

export interface DashReference {
  /** Title-relative path, resolved against the MPD's path and the BaseURL chain. */
  path: string;
  /** What names it: `Initialization`, `SegmentURL`, `SegmentTemplate@media`, `BaseURL`, … */
  role: string;
  /** Representation id, for error messages. */
  representation: string;
  byteRange?: RefByteRange;
}

/** More segments than this in one representation means a broken MPD, not a long film. */
export const MAX_SEGMENTS_PER_REPRESENTATION = 500_000;

function children(el: Element, name: string): Element[] {
  const out: Element[] = [];
  for (let n = el.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === 1 && (n as Element).localName === name) out.push(n as Element);
  }
  return out;
}

function child(el: Element, name: string): Element | undefined {
  return children(el, name)[0];
}

function attr(el: Element | undefined, name: string): string | undefined {
  if (!el || !el.hasAttribute(name)) return undefined;
  return el.getAttribute(name) ?? undefined;
}

/** xs:duration restricted to what MPDs use: PnDTnHnMnS (years and months have no fixed length). */
export function parseIsoDuration(v: string, where: string): number {
  const m = /^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(v.trim());
  if (!m || v.trim() === 'P' || v.trim().endsWith('T')) throw new ManifestError(`${where}: unsupported duration "${v}"`);
  const [, d, h, min, s] = m;
  return Number(d ?? 0) * 86400 + Number(h ?? 0) * 3600 + Number(min ?? 0) * 60 + Number(s ?? 0);
}

function nonNegInt(v: string | undefined, where: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d{1,15}$/.test(v.trim())) throw new ManifestError(`${where}: "${v}" is not a non-negative integer`);
  return Number(v.trim());
}

function parseRangeAttr(v: string | undefined, where: string): RefByteRange | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d{1,15})-(\d{1,15})$/.exec(v.trim());
  if (!m || Number(m[2]) < Number(m[1])) throw new ManifestError(`${where}: bad byte range "${v}"`);
  return { offset: Number(m[1]), length: Number(m[2]) - Number(m[1]) + 1 };
}

export interface TemplateValues {
  RepresentationID: string;
  Bandwidth?: string;
  Number?: number;
  Time?: number;
}

/** Expands `$RepresentationID$`, `$Number%05d$`, `$Time$`, `$Bandwidth$` and `$$` (§5.3.9.4.4). */
export function expandTemplate(tpl: string, v: TemplateValues, where: string): string {
  return tpl.replace(/\$(RepresentationID|Number|Time|Bandwidth|)(?:%0(\d+)d)?\$/g, (whole, id: string, width?: string) => {
    if (id === '') {
      if (width !== undefined) throw new ManifestError(`${where}: bad template identifier "${whole}"`);
      return '$';
    }
    if (id === 'RepresentationID') {
      if (width !== undefined) throw new ManifestError(`${where}: $RepresentationID$ takes no format`);
      return v.RepresentationID;
    }
    const value = v[id as 'Number' | 'Time' | 'Bandwidth'];
    if (value === undefined) throw new ManifestError(`${where}: template uses $${id}$ but no value is known`);
    const text = String(value);
    return width === undefined ? text : text.padStart(Number(width), '0');
  });
}

/** SegmentTemplate / SegmentList / SegmentBase attributes after inheritance. */
interface Inherited {
  template: Map<string, string>;
  timeline?: Element;
  list?: Element;
  base?: Element;
}

function mergeLevel(parent: Inherited, el: Element): Inherited {
  const out: Inherited = { template: new Map(parent.template), timeline: parent.timeline, list: parent.list, base: parent.base };
  const tpl = child(el, 'SegmentTemplate');
  if (tpl) {
    for (let i = 0; i < tpl.attributes.length; i++) {
      const a = tpl.attributes.item(i)!;
      out.template.set(a.localName ?? a.name, a.value);
    }
    const tl = child(tpl, 'SegmentTimeline');
    if (tl) out.timeline = tl;
  }
  const list = child(el, 'SegmentList');
  if (list) out.list = list;
  const base = child(el, 'SegmentBase');
  if (base) out.base = base;
  return out;
}

function baseAt(el: Element, parentBase: string, where: string): string {
  // Several BaseURLs at one level are alternatives of one another (other CDNs); the first
  // one is the layout of this folder.
  const b = child(el, 'BaseURL');
  if (!b) return parentBase;
  const text = (b.textContent ?? '').trim();
  return resolveRef(parentBase, text, `${where} BaseURL`);
}

/** Segment start times from a SegmentTimeline, `r="-1"` running to the next S or the period end. */
function timelineTimes(tl: Element, periodEndTicks: number | undefined, where: string, c: RepContext): number[] {
  const times: number[] = [];
  const ss = children(tl, 'S');
  let t = 0;
  ss.forEach((s, i) => {
    t = nonNegInt(attr(s, 't'), `${where} S@t`, t);
    const d = nonNegInt(attr(s, 'd'), `${where} S@d`, NaN);
    if (!(d > 0)) throw new ManifestError(`${where}: S without a positive @d`);
    const rText = attr(s, 'r');
    let r: number;
    if (rText !== undefined && rText.trim() === '-1') {
      const nextT = attr(ss[i + 1], 't');
      const until = nextT !== undefined ? Number(nextT) : periodEndTicks;
      if (until === undefined || Number.isNaN(until)) throw new ManifestError(`${where}: S@r="-1" with no known end`);
      r = Math.max(0, Math.ceil((until - t) / d) - 1);
    } else {
      r = nonNegInt(rText, `${where} S@r`, 0);
    }
    if (times.length + r + 1 > MAX_SEGMENTS_PER_REPRESENTATION) throw new ManifestError(`${where}: too many segments`);
    spend(c, r + 1);
    for (let k = 0; k <= r; k++) {
      times.push(t);
      t += d;
    }
  });
  return times;
}

/**
 * Every file a static MPD at `selfPath` references, duplicates kept (representations may
 * share an initialization segment; SegmentBase ranges address one file).
 */
export function extractDashReferences(text: string, selfPath: string, opts: ExtractOptions = {}): DashReference[] {
  const doc = parseStrictXml(text, (why) => new ManifestError(`${selfPath}: ${why}`));
  const mpd = doc.documentElement;
  if (!mpd || mpd.localName !== 'MPD') throw new ManifestError(`${selfPath}: not a DASH MPD (root element is not MPD)`);
  if ((attr(mpd, 'type') ?? 'static') !== 'static') throw new ManifestError(`${selfPath}: only static (on-demand) MPDs can be ingested`);
  try {
    checkDashDocument(doc, { name: selfPath });
  } catch (err) {
    if (err instanceof UnsafeManifestError) throw new ManifestError(err.message);
    throw err;
  }
  // Counted before expanding, so a 1 KB MPD claiming a million segments costs nothing.
  const budget = opts.segments;

  const mpdDuration = attr(mpd, 'mediaPresentationDuration');
  const totalSec = mpdDuration === undefined ? undefined : parseIsoDuration(mpdDuration, `${selfPath} MPD@mediaPresentationDuration`);
  // Start from the MPD's folder (not the file), so that a SegmentBase without a BaseURL is
  // an error instead of "the MPD is its own media".
  const slash = selfPath.lastIndexOf('/');
  const mpdBase = baseAt(mpd, slash < 0 ? '' : selfPath.slice(0, slash + 1), selfPath);
  const refs: DashReference[] = [];
  const periods = children(mpd, 'Period');
  if (periods.length === 0) throw new ManifestError(`${selfPath}: no Period`);

  let nextStart = 0;
  periods.forEach((period, pi) => {
    const pWhere = `${selfPath} Period[${pi}]`;
    if (attr(period, 'href') !== undefined) throw new ManifestError(`${pWhere}: xlink periods are not supported`);
    const start = attr(period, 'start') !== undefined ? parseIsoDuration(attr(period, 'start')!, `${pWhere}@start`) : nextStart;
    let durSec: number | undefined;
    if (attr(period, 'duration') !== undefined) durSec = parseIsoDuration(attr(period, 'duration')!, `${pWhere}@duration`);
    else if (attr(periods[pi + 1], 'start') !== undefined) durSec = parseIsoDuration(attr(periods[pi + 1], 'start')!, pWhere) - start;
    else if (pi === periods.length - 1 && totalSec !== undefined) durSec = totalSec - start;
    nextStart = start + (durSec ?? 0);

    const pBase = baseAt(period, mpdBase, pWhere);
    const pInh = mergeLevel({ template: new Map() }, period);
    children(period, 'AdaptationSet').forEach((set, ai) => {
      const aWhere = `${pWhere} AdaptationSet[${ai}]`;
      const aBase = baseAt(set, pBase, aWhere);
      const aInh = mergeLevel(pInh, set);
      children(set, 'Representation').forEach((rep, ri) => {
        const repId = attr(rep, 'id') ?? '';
        const rWhere = `${aWhere} Representation[${repId || ri}]`;
        const rBase = baseAt(rep, aBase, rWhere);
        const inh = mergeLevel(aInh, rep);
        representationRefs(refs, { repId, bandwidth: attr(rep, 'bandwidth'), base: rBase, inh, durSec, where: rWhere, budget });
      });
    });
  });
  return refs;
}

interface RepContext {
  repId: string;
  bandwidth?: string;
  /** The representation's resolved BaseURL: a file for SegmentBase, else usually a folder. */
  base: string;
  inh: Inherited;
  durSec?: number;
  where: string;
  /** Segments the title may still have (origin.maxSegmentsPerTitle). */
  budget?: SegmentBudget;
}

function spend(c: RepContext, n: number): void {
  spendSegments(c.budget, n, c.where);
}

function representationRefs(refs: DashReference[], c: RepContext): void {
  const push = (uri: string, role: string, range?: RefByteRange) =>
    refs.push({ path: resolveRef(c.base, uri, `${c.where} ${role}`), role, representation: c.repId, ...(range ? { byteRange: range } : {}) });
  const baseIsFile = (role: string): string => {
    if (c.base === '' || c.base.endsWith('/')) throw new ManifestError(`${c.where}: ${role} needs a BaseURL naming the media file`);
    return c.base;
  };
  const pushBase = (role: string, range?: RefByteRange) =>
    refs.push({ path: baseIsFile(role), role, representation: c.repId, ...(range ? { byteRange: range } : {}) });
  const init = (holder: Element, role: string) => {
    const el = child(holder, 'Initialization');
    if (!el) return;
    const range = parseRangeAttr(attr(el, 'range'), `${c.where} Initialization@range`);
    const src = attr(el, 'sourceURL');
    if (src !== undefined) push(src, role, range);
    else pushBase(role, range);
  };

  const tpl = c.inh.template;
  if (tpl.has('media') || tpl.has('initialization')) {
    templateRefs(refs, c);
    return;
  }
  if (c.inh.list) {
    init(c.inh.list, 'Initialization');
    spend(c, children(c.inh.list, 'SegmentURL').length);
    for (const su of children(c.inh.list, 'SegmentURL')) {
      const range = parseRangeAttr(attr(su, 'mediaRange'), `${c.where} SegmentURL@mediaRange`);
      const media = attr(su, 'media');
      if (media !== undefined) push(media, 'SegmentURL', range);
      else pushBase('SegmentURL', range);
    }
    return;
  }
  // SegmentBase, or nothing at all: the BaseURL is the whole media file (indexed by its sidx).
  if (c.inh.base) init(c.inh.base, 'Initialization');
  pushBase('BaseURL');
}

function templateRefs(refs: DashReference[], c: RepContext): void {
  const tpl = c.inh.template;
  const w = `${c.where} SegmentTemplate`;
  const values: TemplateValues = { RepresentationID: c.repId, Bandwidth: c.bandwidth };
  const push = (raw: string, role: string, v: TemplateValues) =>
    refs.push({ path: resolveRef(c.base, expandTemplate(raw, v, w), `${w}@${role}`), role: `SegmentTemplate@${role}`, representation: c.repId });

  const initTpl = tpl.get('initialization');
  if (initTpl !== undefined) push(initTpl, 'initialization', values);
  const media = tpl.get('media');
  if (media === undefined) return;

  const timescale = nonNegInt(tpl.get('timescale'), `${w}@timescale`, 1);
  if (timescale === 0) throw new ManifestError(`${w}: @timescale must be positive`);
  const startNumber = nonNegInt(tpl.get('startNumber'), `${w}@startNumber`, 1);
  const pto = nonNegInt(tpl.get('presentationTimeOffset'), `${w}@presentationTimeOffset`, 0);
  const periodEndTicks = c.durSec === undefined ? undefined : pto + Math.round(c.durSec * timescale);

  if (c.inh.timeline) {
    timelineTimes(c.inh.timeline, periodEndTicks, w, c).forEach((t, i) =>
      push(media, 'media', { ...values, Number: startNumber + i, Time: t }),
    );
    return;
  }
  const duration = nonNegInt(tpl.get('duration'), `${w}@duration`, 0);
  if (duration === 0) throw new ManifestError(`${w}: needs a SegmentTimeline or a positive @duration`);
  if (c.durSec === undefined) throw new ManifestError(`${w}: cannot count segments: the period has no known length`);
  // A tiny tolerance: a 12.0 s period of 2 s segments is 6 segments, not 7 from float noise.
  const count = Math.ceil((c.durSec * timescale) / duration - 1e-6);
  if (count > MAX_SEGMENTS_PER_REPRESENTATION) throw new ManifestError(`${w}: too many segments`);
  spend(c, count);
  for (let i = 0; i < count; i++) push(media, 'media', { ...values, Number: startNumber + i, Time: pto + i * duration });
}
