import { describe, expect, it } from 'vitest';
import { MAX_RANGES, contentRange, mergeRanges, parseContentRange, parseRange, type RangeRequest } from '../src/common/range.js';

const none: RangeRequest = { kind: 'none' };
const unsat: RangeRequest = { kind: 'unsatisfiable' };
const r = (...pairs: [number, number][]): RangeRequest => ({ kind: 'ranges', ranges: pairs.map(([start, end]) => ({ start, end })) });

describe('parseRange', () => {
  // [header, size, expected]; ranges are half-open [start, end) in the result.
  const cases: [string | undefined, number, RangeRequest, string][] = [
    [undefined, 1000, none, 'no header'],
    // RFC 9110 §14.1.2 examples on a 10000-byte representation
    ['bytes=0-499', 10000, r([0, 500]), 'first 500 bytes'],
    ['bytes=500-999', 10000, r([500, 1000]), 'second 500 bytes'],
    ['bytes=-500', 10000, r([9500, 10000]), 'final 500 bytes (suffix)'],
    ['bytes=9500-', 10000, r([9500, 10000]), 'final 500 bytes (open)'],
    ['bytes=0-0,-1', 10000, r([0, 1], [9999, 10000]), 'first and last byte'],
    ['bytes=0-999,4500-5499,-1000', 10000, r([0, 1000], [4500, 5500], [9000, 10000]), 'three ranges'],
    ['bytes=500-600,601-999', 10000, r([500, 1000]), 'adjacent ranges merge'],
    ['bytes=500-700,601-999', 10000, r([500, 1000]), 'overlapping ranges merge'],
    // clamping (send / range-parser)
    ['bytes=0-', 1000, r([0, 1000]), 'open range is the whole body'],
    ['bytes=0-9999', 1000, r([0, 1000]), 'end past the size is clamped'],
    ['bytes=-2000', 1000, r([0, 1000]), 'suffix longer than the body is the whole body'],
    ['bytes=999-999', 1000, r([999, 1000]), 'the last byte'],
    ['bytes=1000-1000', 1000, unsat, 'first byte past the end'],
    ['bytes=1000-', 1000, unsat, 'open range past the end'],
    ['bytes=5000-6000', 1000, unsat, 'wholly past the end'],
    ['bytes=1000-2000,5000-', 1000, unsat, 'every range past the end'],
    ['bytes=1000-2000,0-1', 1000, r([0, 2]), 'one satisfiable range is enough'],
    ['bytes=-0', 1000, unsat, 'suffix of zero bytes (nginx: 416)'],
    ['bytes=-0,0-1', 1000, r([0, 2]), 'suffix zero beside a good range'],
    ['bytes=0-0', 0, unsat, 'any range of an empty body'],
    ['bytes=-5', 0, unsat, 'suffix of an empty body'],
    // ordering, merging
    ['bytes=900-999,0-99', 1000, r([0, 100], [900, 1000]), 'sorted by start'],
    ['bytes=0-99,0-99,0-99', 1000, r([0, 100]), 'duplicates collapse'],
    ['bytes=0-499,-600', 1000, r([0, 1000]), 'suffix overlapping a prefix merges'],
    ['bytes=10-20,0-5,6-9', 1000, r([0, 21]), 'three adjacent out of order merge into one'],
    // whitespace and list syntax
    ['bytes= 0-1', 1000, r([0, 2]), 'space after ='],
    ['bytes=0-1 , 3-4', 1000, r([0, 2], [3, 5]), 'spaces around commas'],
    ['bytes=0-1,,3-4', 1000, r([0, 2], [3, 5]), 'empty list element'],
    ['bytes =0-1', 1000, r([0, 2]), 'space before ='],
    ['BYTES=0-1', 1000, r([0, 2]), 'unit is case-insensitive'],
    ['\tbytes=0-1\t', 1000, r([0, 2]), 'surrounding tabs'],
    // invalid → ignored (200)
    ['bytes=', 1000, none, 'no specs'],
    ['bytes=,', 1000, none, 'only commas'],
    ['bytes', 1000, none, 'no ='],
    ['items=0-1', 1000, none, 'other unit'],
    ['bytes=abc', 1000, none, 'not a spec'],
    ['bytes=1-0', 1000, none, 'last before first'],
    ['bytes=1', 1000, none, 'no dash'],
    ['bytes=-', 1000, none, 'lone dash'],
    ['bytes=--1', 1000, none, 'double dash'],
    ['bytes=1-2-3', 1000, none, 'two dashes'],
    ['bytes=0x10-0x20', 1000, none, 'hex'],
    ['bytes=+1-2', 1000, none, 'sign'],
    ['bytes=1.5-2', 1000, none, 'decimal'],
    ['bytes=0 -1', 1000, none, 'space inside a spec'],
    ['bytes=0-1,abc', 1000, none, 'one bad spec spoils the header'],
    ['bytes=0-1;q=1', 1000, none, 'parameters'],
    // huge numbers: beyond 15 digits the header is ignored rather than misread as a float
    ['bytes=0-999999999999999', 1000, r([0, 1000]), '15-digit end is clamped'],
    ['bytes=999999999999999-', 1000, unsat, '15-digit start is past the end'],
    ['bytes=0-99999999999999999999', 1000, none, '20-digit end is ignored'],
    ['bytes=-99999999999999999999', 1000, none, '20-digit suffix is ignored'],
  ];
  it.each(cases)('%j on %d bytes → %j (%s)', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });

  it('accepts exactly MAX_RANGES ranges and ignores one more', () => {
    const specs = (n: number) => `bytes=${Array.from({ length: n }, (_, i) => `${i * 10}-${i * 10 + 1}`).join(',')}`;
    const ok = parseRange(specs(MAX_RANGES), 100_000);
    expect(ok.kind).toBe('ranges');
    expect(ok.kind === 'ranges' && ok.ranges.length).toBe(MAX_RANGES);
    expect(parseRange(specs(MAX_RANGES + 1), 100_000)).toEqual(none);
  });

  it('never returns a range outside the body or an empty one', () => {
    for (const size of [0, 1, 7, 1000]) {
      for (const h of ['bytes=0-', 'bytes=-3', 'bytes=5-9', 'bytes=0-0,2-3,-1', 'bytes=6-100']) {
        const got = parseRange(h, size);
        if (got.kind !== 'ranges') continue;
        for (const x of got.ranges) {
          expect(x.start).toBeGreaterThanOrEqual(0);
          expect(x.end).toBeLessThanOrEqual(size);
          expect(x.end).toBeGreaterThan(x.start);
        }
      }
    }
  });
});

describe('mergeRanges', () => {
  it('merges overlapping and adjacent, keeps gaps, does not mutate its input', () => {
    const input = [{ start: 10, end: 20 }, { start: 0, end: 5 }, { start: 5, end: 8 }, { start: 9, end: 12 }];
    const copy = structuredClone(input);
    expect(mergeRanges(input)).toEqual([{ start: 0, end: 8 }, { start: 9, end: 20 }]);
    expect(input).toEqual(copy);
  });
  it('keeps a contained range inside its container', () => {
    expect(mergeRanges([{ start: 0, end: 100 }, { start: 10, end: 20 }])).toEqual([{ start: 0, end: 100 }]);
  });
});

describe('contentRange / parseContentRange', () => {
  it('prints inclusive ends', () => {
    expect(contentRange({ start: 0, end: 1 }, 10)).toBe('bytes 0-0/10');
    expect(contentRange({ start: 5, end: 10 }, 10)).toBe('bytes 5-9/10');
  });
  it.each([
    ['bytes 0-0/10', { start: 0, end: 1, size: 10 }],
    ['bytes 5-9/10', { start: 5, end: 10, size: 10 }],
    [' bytes 5-9/10 ', { start: 5, end: 10, size: 10 }],
    ['bytes */10', { unsatisfied: true, size: 10 }],
    ['bytes 5-10/10', undefined],
    ['bytes 9-5/10', undefined],
    ['bytes 0-1/*', undefined],
    ['items 0-1/10', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('parses %j', (header, expected) => {
    expect(parseContentRange(header)).toEqual(expected);
  });
});
