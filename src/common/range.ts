/** A byte range, half-open: [start, end). Inclusive only when printed in a header. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * What a Range header asks of an object of `size` bytes (RFC 9110 §14.2):
 * - `none`: no header, another unit, or a syntactically invalid one — serve the whole body (200);
 * - `unsatisfiable`: valid, but no range overlaps the body — 416;
 * - `ranges`: sorted, overlapping and adjacent ones merged, clamped to the size.
 */
export type RangeRequest =
  | { kind: 'none' }
  | { kind: 'unsatisfiable' }
  | { kind: 'ranges'; ranges: ByteRange[] };

/** More ranges than this is a denial-of-service shape, not a player; the header is ignored. */
export const MAX_RANGES = 64;

const DIGITS = /^\d{1,15}$/;

export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'none' };
  const eq = header.indexOf('=');
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return { kind: 'none' };
  const specs = header.slice(eq + 1).split(',');
  if (specs.length > MAX_RANGES) return { kind: 'none' };

  const satisfiable: ByteRange[] = [];
  let sawSpec = false;
  for (const raw of specs) {
    const spec = raw.trim();
    if (spec === '') continue; // RFC 9110 list syntax tolerates empty elements
    sawSpec = true;
    const dash = spec.indexOf('-');
    if (dash < 0) return { kind: 'none' };
    const first = spec.slice(0, dash);
    const last = spec.slice(dash + 1);
    if (first === '') {
      if (!DIGITS.test(last)) return { kind: 'none' };
      const suffix = Number(last);
      if (suffix > 0 && size > 0) satisfiable.push({ start: Math.max(0, size - suffix), end: size });
      continue;
    }
    if (!DIGITS.test(first) || (last !== '' && !DIGITS.test(last))) return { kind: 'none' };
    const start = Number(first);
    const lastPos = last === '' ? Infinity : Number(last);
    if (lastPos < start) return { kind: 'none' };
    if (start < size) satisfiable.push({ start, end: Math.min(lastPos + 1, size) });
  }
  if (!sawSpec) return { kind: 'none' };
  if (satisfiable.length === 0) return { kind: 'unsatisfiable' };
  return { kind: 'ranges', ranges: mergeRanges(satisfiable) };
}

/** Sorts and merges overlapping or adjacent ranges. */
export function mergeRanges(ranges: ByteRange[]): ByteRange[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const prev = out[out.length - 1];
    if (prev && r.start <= prev.end) prev.end = Math.max(prev.end, r.end);
    else out.push({ ...r });
  }
  return out;
}

/** `bytes a-b/size` for a Content-Range header. */
export function contentRange(r: ByteRange, size: number): string {
  return `bytes ${r.start}-${r.end - 1}/${size}`;
}

/** Parses `bytes a-b/size` or `bytes * /size` (an upstream's answer). */
export function parseContentRange(
  header: string | undefined,
): { start: number; end: number; size: number } | { unsatisfied: true; size: number } | undefined {
  if (!header) return undefined;
  let m = /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15})$/.exec(header.trim());
  if (m) {
    const start = Number(m[1]);
    const end = Number(m[2]) + 1;
    const size = Number(m[3]);
    if (end <= start || end > size) return undefined;
    return { start, end, size };
  }
  m = /^bytes \*\/(\d{1,15})$/.exec(header.trim());
  if (m) return { unsatisfied: true, size: Number(m[1]) };
  return undefined;
}
