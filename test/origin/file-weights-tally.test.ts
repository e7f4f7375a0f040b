import { describe, expect, it } from 'vitest';
import { checkServeReport, parseServeReport } from '../../src/origin/file-weights.js';
import { MAX_TALLY_SLICES, ServeTally } from '../../src/edge/serve-report.js';

const SLICE = 4096;
const NOW = 1_700_000_000_000;

/** A small seeded generator: the same sequence every run. */
function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

describe("the edge's tally always makes a report the origin takes", () => {
  it('whatever is served, taken and given back, each report passes the shape and the checks', () => {
    const sizes: Record<string, number> = { 'a/big.mp4': 50 * SLICE + 123, 'a/seg.m4s': 3000, 'b/big.mp4': 7 * SLICE };
    const names = Object.keys(sizes);
    const r = rng(7);
    const tally = new ServeTally(SLICE);
    let seq = 0;
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 20; i++) {
        const name = names[Math.floor(r() * names.length)]!;
        const size = sizes[name]!;
        const start = Math.floor(r() * size);
        const length = 1 + Math.floor(r() * (size - start));
        const [title, file] = name.split('/') as [string, string];
        tally.served(title, file, size, start, length, r() < 0.3 ? `p${Math.floor(r() * 50)}`.padEnd(22, 'x') : undefined);
      }
      const titles = tally.take();
      const report = { edgeId: 'edge-a1', instance: 'i', seq: ++seq, from: NOW - 60_000, to: NOW, sliceBytes: SLICE, titles };
      const parsed = parseServeReport(JSON.parse(JSON.stringify(report)));
      expect(parsed.ok).toBe(true);
      const v = checkServeReport(report, { isEdge: () => true, fileSize: (t, f) => sizes[`${t}/${f}`], now: NOW });
      expect(v, JSON.stringify(v)).toEqual({ ok: true, unknownFiles: 0 });
      // A third of the reports "fail to send" and go back into the tally.
      if (r() < 0.33) tally.giveBack(titles);
    }
  });

  it('past its slice budget a file is counted in bytes only, and the sum stays whole', () => {
    const tally = new ServeTally(SLICE);
    const size = (MAX_TALLY_SLICES + 10) * SLICE;
    tally.served('t', 'one.mp4', size, 0, SLICE, undefined);
    // The end of a huge file: its slice list would pass the budget.
    tally.served('t', 'one.mp4', size, size - 1, 1, undefined);
    tally.served('t', 'one.mp4', size, SLICE, SLICE, undefined);
    expect(tally.take()).toEqual([{ title: 't', plays: 0, files: [{ file: 'one.mp4', requests: 3, bytes: 2 * SLICE + 1 }] }]);
  });
});
