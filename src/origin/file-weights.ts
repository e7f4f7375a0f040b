/**
 * What edges actually served, per title and file, turned into the per-file weights the fill
 * planner places by (issue 13, point 3). Pure: a report's shape, the checks that refuse a report
 * whose numbers no edge could have produced, per-day sums, and decayed weights. Signatures,
 * persistence and the route live in serve-report-route.ts and served-store.ts; the wire format
 * (also the edges') in src/common/serve-report-wire.ts.
 *
 * The unit of a weight is the planner's (fill-planner.ts `PlanTitle.files[i].weight`): the share
 * of a title's plays expected to read the file, 0-1. From reports it is
 *   weight(f) = Σ_days w(day) · bytes(f, day) / size(f)   /   Σ_days w(day) · plays(title, day)
 * with w(day) = 0.5^(age / halfLifeDays), as popularity.ts decays plays: the whole-file reads a
 * play makes of f. A segment read once per play weighs the share of plays that reach it; a
 * single-file title read to 56 % on average weighs 0.56, and per slice the share of plays
 * reaching each slice (its prefix curve).
 */

export type { ServeReport, ServedFile, ServedTitle } from '../common/serve-report-wire.js';
import type { ServeReport, ServedFile, ServedTitle } from '../common/serve-report-wire.js';

/**
 * What the planner reads. A title without enough data answers `undefined` for every file: the
 * planner then places it whole (today's behaviour).
 */
export interface FileWeights {
  /** Unit of `sliceWeights`: bytes per slice. */
  readonly sliceBytes: number;
  /** Titles with data. */
  titles(): string[];
  /**
   * Share of the title's plays expected to read the file (0-1); 0 for a file of a title with
   * data that nobody read; undefined when the title has no data.
   */
  weightOf(title: string, file: string): number | undefined;
  /**
   * Per slice of `sliceBytes`: share of the title's plays expected to read slice i (0-1), as
   * long as the last slice anyone read; undefined when the file was never broken down by slice
   * (segments) or the title has no data.
   */
  sliceWeights(title: string, file: string): number[] | undefined;
  /** The (decayed) plays behind a title's weights — how far to trust them; undefined when the title has no data. */
  playsOf?(title: string): number | undefined;
}

/** No data at all: every title placed whole. */
export const NO_FILE_WEIGHTS: FileWeights = Object.freeze({
  sliceBytes: 2 * 1024 * 1024,
  titles: () => [],
  weightOf: () => undefined,
  sliceWeights: () => undefined,
});

// ---------------------------------------------------------------------------------------------
// Shape

/** A report is refused above these: more is not what one edge sends every minute. */
export const MAX_REPORT_TITLES = 20_000;
export const MAX_REPORT_FILES = 200_000;
export const MAX_REPORT_SLICES = 1_000_000;
/** A report covers at most this long (an edge that could not report for longer starts afresh). */
export const MAX_REPORT_SPAN_MS = 3_600_000;
/** More than this per second, on average over a report's period, is no edge's (800 Gbit/s). */
export const MAX_EDGE_BYTES_PER_SEC = 100e9;
/** A report stamped further than this from the origin's clock is refused (replays, broken clocks). */
export const MAX_REPORT_SKEW_MS = 300_000;

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const INSTANCE_RE = /^[A-Za-z0-9_-]{1,64}$/;

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Validates the shape of a report (400 on failure); the error names the first bad field. */
export function parseServeReport(body: unknown): Parsed<ServeReport> {
  const bad = (error: string): Parsed<ServeReport> => ({ ok: false, error });
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (typeof b.edgeId !== 'string' || !ID_RE.test(b.edgeId)) return bad('edgeId: must be an edge id');
  if (typeof b.instance !== 'string' || !INSTANCE_RE.test(b.instance)) return bad('instance: must be an instance id');
  if (!count(b.seq) || b.seq < 1) return bad('seq: must be a positive integer');
  if (!count(b.from) || b.from > 8.64e15) return bad('from: must be a time in ms since the epoch');
  if (!count(b.to) || b.to > 8.64e15 || b.to < b.from) return bad('to: must be a time in ms since the epoch, not before from');
  if (!count(b.sliceBytes) || b.sliceBytes < 4096 || b.sliceBytes > 64 * 1024 * 1024) return bad('sliceBytes: must be between 4096 and 67108864');
  if (!Array.isArray(b.titles)) return bad('titles: must be an array');
  if (b.titles.length > MAX_REPORT_TITLES) return bad(`titles: at most ${MAX_REPORT_TITLES}`);
  const titles: ServedTitle[] = [];
  let files = 0;
  let slices = 0;
  const seenTitles = new Set<string>();
  for (let i = 0; i < b.titles.length; i++) {
    const t = b.titles[i] as Record<string, unknown> | null;
    const f = `titles[${i}]`;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) return bad(`${f}: must be an object`);
    if (typeof t.title !== 'string' || !ID_RE.test(t.title)) return bad(`${f}.title: must be a title id`);
    if (seenTitles.has(t.title)) return bad(`${f}.title: "${t.title}" appears twice`);
    seenTitles.add(t.title);
    if (!count(t.plays)) return bad(`${f}.plays: must be a count`);
    if (!Array.isArray(t.files)) return bad(`${f}.files: must be an array`);
    files += t.files.length;
    if (files > MAX_REPORT_FILES) return bad(`titles: at most ${MAX_REPORT_FILES} files in all`);
    const out: ServedFile[] = [];
    const seenFiles = new Set<string>();
    for (let j = 0; j < t.files.length; j++) {
      const x = t.files[j] as Record<string, unknown> | null;
      const g = `${f}.files[${j}]`;
      if (typeof x !== 'object' || x === null || Array.isArray(x)) return bad(`${g}: must be an object`);
      if (typeof x.file !== 'string' || x.file.length === 0 || x.file.length > 1024) return bad(`${g}.file: must be a file path`);
      if (seenFiles.has(x.file)) return bad(`${g}.file: "${x.file}" appears twice`);
      seenFiles.add(x.file);
      if (!count(x.requests)) return bad(`${g}.requests: must be a count`);
      if (!count(x.bytes)) return bad(`${g}.bytes: must be a count`);
      let sl: number[] | undefined;
      if (x.slices !== undefined) {
        if (!Array.isArray(x.slices) || !x.slices.every(count)) return bad(`${g}.slices: must be an array of counts`);
        slices += x.slices.length;
        if (slices > MAX_REPORT_SLICES) return bad(`titles: at most ${MAX_REPORT_SLICES} slices in all`);
        sl = x.slices as number[];
      }
      out.push(sl ? { file: x.file, requests: x.requests, bytes: x.bytes, slices: sl } : { file: x.file, requests: x.requests, bytes: x.bytes });
    }
    titles.push({ title: t.title, plays: t.plays, files: out });
  }
  return { ok: true, value: { edgeId: b.edgeId, instance: b.instance, seq: b.seq, from: b.from, to: b.to, sliceBytes: b.sliceBytes, titles } };
}

// ---------------------------------------------------------------------------------------------
// Does it fit?

/** Why a well-formed report was refused; every value is a metric label. */
export type ReportRefusal = 'unknown edge' | 'bad signature' | 'stale' | 'replayed' | 'impossible numbers';
export const REPORT_REFUSALS: readonly ReportRefusal[] = Object.freeze(['unknown edge', 'bad signature', 'stale', 'replayed', 'impossible numbers']);

/** What a report is checked against. */
export interface ReportFacts {
  /** Edge ids of the cluster file. */
  isEdge(edgeId: string): boolean;
  /** Size of a catalog file; undefined when the catalog has no such title or file. */
  fileSize(title: string, file: string): number | undefined;
  /** Origin clock, ms. */
  now: number;
  /** The last report accepted from this edge and instance, if any. */
  previous?: { seq: number; to: number };
}

export type ReportVerdict = { ok: true; unknownFiles: number } | { ok: false; reason: ReportRefusal; detail: string };

/**
 * The semantic checks, after the signature: the edge is one of the cluster's, the report is
 * fresh and new, and every number is one an edge could have served. Files the catalog does not
 * (or no longer) know are not a refusal — a title removed between the edge's serving and the
 * report is no forgery — they are counted and skipped by the aggregator.
 */
export function checkServeReport(r: ServeReport, facts: ReportFacts): ReportVerdict {
  const refuse = (reason: ReportRefusal, detail: string): ReportVerdict => ({ ok: false, reason, detail });
  if (!facts.isEdge(r.edgeId)) return refuse('unknown edge', `no edge "${r.edgeId}" in the cluster file`);
  if (Math.abs(r.to - facts.now) > MAX_REPORT_SKEW_MS) return refuse('stale', `to is ${Math.round((r.to - facts.now) / 1000)} s from the origin's clock`);
  if (r.to - r.from > MAX_REPORT_SPAN_MS) return refuse('impossible numbers', `the period is ${Math.round((r.to - r.from) / 1000)} s, more than ${MAX_REPORT_SPAN_MS / 1000} s`);
  if (facts.previous) {
    if (r.seq <= facts.previous.seq) return refuse('replayed', `seq ${r.seq} after ${facts.previous.seq}`);
    if (r.from < facts.previous.to) return refuse('replayed', 'the period overlaps the previous report');
  }
  let total = 0;
  let unknownFiles = 0;
  for (const t of r.titles) {
    let requests = 0;
    for (const f of t.files) {
      requests += f.requests;
      total += f.bytes;
      const size = facts.fileSize(t.title, f.file);
      if (size === undefined) {
        unknownFiles++;
        continue;
      }
      const where = `${t.title}/${f.file}`;
      if (f.bytes > size * f.requests) return refuse('impossible numbers', `${where}: ${f.bytes} bytes in ${f.requests} requests of a ${size}-byte file`);
      if (f.slices) {
        const n = Math.ceil(size / r.sliceBytes);
        if (f.slices.length > n) return refuse('impossible numbers', `${where}: ${f.slices.length} slices of a ${n}-slice file`);
        let sum = 0;
        for (let i = 0; i < f.slices.length; i++) {
          const len = Math.min(r.sliceBytes, size - i * r.sliceBytes);
          if (f.slices[i]! > len * f.requests) return refuse('impossible numbers', `${where}: slice ${i} sent ${f.slices[i]} bytes in ${f.requests} requests`);
          sum += f.slices[i]!;
        }
        if (sum !== f.bytes) return refuse('impossible numbers', `${where}: slices sum to ${sum}, bytes say ${f.bytes}`);
      }
    }
    // Every play this edge saw asked it for something of the title.
    if (t.plays > requests) return refuse('impossible numbers', `${t.title}: ${t.plays} plays in ${requests} requests`);
  }
  const seconds = Math.max(1, r.to - r.from) / 1000;
  if (total > MAX_EDGE_BYTES_PER_SEC * seconds) return refuse('impossible numbers', `${total} bytes in ${seconds} s`);
  return { ok: true, unknownFiles };
}

// ---------------------------------------------------------------------------------------------
// Sums per day, weights

/** One file's sums over a day, all edges. `slices` is in the aggregator's slice unit. */
export interface FileDay {
  requests: number;
  bytes: number;
  slices?: number[];
}

/** One title's sums over a day. */
export interface TitleDay {
  plays: number;
  files: Record<string, FileDay>;
}

/** title → sums; one per UTC day. A plain value (it is what served.json stores). */
export type ServedDay = Record<string, TitleDay>;

/**
 * Adds an accepted report into a day's sums, in place. Slices are moved into `sliceBytes` units
 * (bytes spread evenly within an edge's slice when the units differ). Files the catalog does
 * not know are skipped.
 */
export function addReport(day: ServedDay, r: ServeReport, sliceBytes: number, fileSize: (title: string, file: string) => number | undefined): void {
  for (const t of r.titles) {
    const known = t.files.filter((f) => fileSize(t.title, f.file) !== undefined);
    if (known.length === 0 && t.plays === 0) continue;
    const td = (day[t.title] ??= { plays: 0, files: {} });
    td.plays += t.plays;
    for (const f of known) {
      const fd = (td.files[f.file] ??= { requests: 0, bytes: 0 });
      fd.requests += f.requests;
      fd.bytes += f.bytes;
      if (f.slices && f.slices.some((b) => b > 0)) {
        const into = (fd.slices ??= []);
        rebin(f.slices, r.sliceBytes, sliceBytes, into);
      }
    }
  }
}

/** Adds bytes per `from`-sized slice into `to`-sized slices (uniform within a slice). */
function rebin(src: readonly number[], from: number, to: number, into: number[]): void {
  for (let i = 0; i < src.length; i++) {
    const bytes = src[i]!;
    if (bytes === 0) continue;
    if (from === to) {
      into[i] = (into[i] ?? 0) + bytes;
      continue;
    }
    const start = i * from;
    const end = start + from;
    for (let j = Math.floor(start / to); j * to < end; j++) {
      const overlap = Math.min(end, (j + 1) * to) - Math.max(start, j * to);
      into[j] = (into[j] ?? 0) + (bytes * overlap) / from;
    }
  }
  for (let k = 0; k < into.length; k++) into[k] ??= 0;
}

export interface WeightOptions {
  /** As origin.fill.halfLifeDays: a day's numbers weigh half one half-life later. */
  halfLifeDays: number;
  /** The slice unit of the days' `slices`. */
  sliceBytes: number;
  /** Size of a catalog file (the catalog the weights are for); undefined: not in it. */
  fileSize: (title: string, file: string) => number | undefined;
  /**
   * A title needs at least this many (decayed) plays behind it to get weights: below, one odd
   * session would decide where its bytes go. Default 5.
   */
  minPlays?: number;
  /**
   * Plays of a title on a day as steering confirmed them (the play store: ids steering issued
   * and an edge then served), summed over ISPs; undefined: use the edges' own count. Play ids
   * come from clients' URLs, so an edge's count is only as good as its clients — steering's is not.
   */
  plays?: (day: string, title: string) => number | undefined;
}

const DAY_MS = 86_400_000;

/**
 * Weights for planning on `today` (YYYY-MM-DD, UTC) from the days' sums, decayed like
 * plays (popularity.ts). A title's plays are steering's count (`plays`) or else the play ids
 * its edges saw; where there are fewer than its most-read file's (or slice's) reads —
 * requests without play ids — those reads stand in, so no weight exceeds 1.
 */
export function fileWeights(days: Iterable<[string, ServedDay]>, today: string, opts: WeightOptions): FileWeights {
  const todayMs = Date.parse(`${today}T00:00:00Z`);
  const minPlays = opts.minPlays ?? 5;
  const sums = new Map<string, { plays: number; files: Map<string, { reads: number; slices?: number[] }> }>();
  for (const [day, served] of days) {
    const age = Math.round((todayMs - Date.parse(`${day}T00:00:00Z`)) / DAY_MS);
    if (!(age >= 0)) continue;
    const w = Math.pow(0.5, age / opts.halfLifeDays);
    for (const [title, td] of Object.entries(served)) {
      let s = sums.get(title);
      if (!s) sums.set(title, (s = { plays: 0, files: new Map() }));
      s.plays += w * (opts.plays?.(day, title) ?? td.plays);
      for (const [file, fd] of Object.entries(td.files)) {
        const size = opts.fileSize(title, file);
        if (size === undefined || size === 0) continue;
        let x = s.files.get(file);
        if (!x) s.files.set(file, (x = { reads: 0 }));
        x.reads += (w * fd.bytes) / size;
        if (fd.slices) {
          const into = (x.slices ??= []);
          fd.slices.forEach((b, i) => {
            const len = Math.min(opts.sliceBytes, size - i * opts.sliceBytes);
            if (len > 0) into[i] = (into[i] ?? 0) + (w * b) / len;
          });
        }
      }
    }
  }
  const weights = new Map<string, { plays: number; files: Map<string, number>; slices: Map<string, number[]> }>();
  for (const [title, s] of sums) {
    let most = 0;
    for (const x of s.files.values()) {
      most = Math.max(most, x.reads);
      for (const r of x.slices ?? []) most = Math.max(most, r ?? 0);
    }
    const plays = Math.max(s.plays, most);
    if (plays < minPlays) continue;
    const files = new Map<string, number>();
    const slices = new Map<string, number[]>();
    for (const [file, x] of s.files) {
      files.set(file, Math.min(1, x.reads / plays));
      if (x.slices) slices.set(file, Array.from(x.slices, (r) => Math.min(1, (r ?? 0) / plays)));
    }
    weights.set(title, { plays, files, slices });
  }
  return {
    sliceBytes: opts.sliceBytes,
    titles: () => [...weights.keys()],
    weightOf: (title, file) => {
      const t = weights.get(title);
      return t ? (t.files.get(file) ?? 0) : undefined;
    },
    sliceWeights: (title, file) => weights.get(title)?.slices.get(file)?.slice(),
    playsOf: (title) => weights.get(title)?.plays,
  };
}
