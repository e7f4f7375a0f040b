import type { ByteRange } from '../common/range.js';

/** Slice i of an object covers [i·S, min((i+1)·S, size)). */
export function sliceBounds(index: number, sliceBytes: number, size: number): ByteRange {
  const start = index * sliceBytes;
  return { start, end: Math.min(start + sliceBytes, size) };
}

export function sliceCount(size: number, sliceBytes: number): number {
  return Math.ceil(size / sliceBytes);
}

/** The slices a byte range touches, first to last. */
export function slicesFor(range: ByteRange, sliceBytes: number): number[] {
  if (range.end <= range.start) return [];
  const first = Math.floor(range.start / sliceBytes);
  const last = Math.floor((range.end - 1) / sliceBytes);
  const out: number[] = [];
  for (let i = first; i <= last; i++) out.push(i);
  return out;
}
