import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FillManifest } from '../../src/common/fill-manifest.js';
import { SliceDigests, sliceDigestsOf } from '../../src/origin/slice-digests.js';
import { tempDir } from '../helpers/cluster.js';

const S = 4096;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe("the origin's per-slice digests for prefix fills", () => {
  it('hashes each slice (the last one short), from any slice on', async () => {
    const data = randomBytes(5 * S + 100);
    const path = join(tempDir(), 'f.bin');
    await writeFile(path, data);
    const want = Array.from({ length: 6 }, (_, i) => sha(data.subarray(i * S, (i + 1) * S)));
    expect(await sliceDigestsOf(path, S)).toEqual(want);
    expect(await sliceDigestsOf(path, S, 2, 2)).toEqual(want.slice(2, 4));
    expect(await sliceDigestsOf(path, S, 4, 10)).toEqual(want.slice(4));
  });

  it('reads only the prefix a manifest asks for, and on from there when a longer one is asked', async () => {
    const data = randomBytes(8 * S);
    const path = join(tempDir(), 'f.bin');
    await writeFile(path, data);
    const digests = new SliceDigests();
    const m = (end: number): FillManifest => ({
      edgeId: 'e',
      isp: 'i',
      version: 'v',
      generatedAt: '',
      titles: ['t'],
      bytes: end,
      files: [{ title: 't', file: 'f.bin', size: data.length, sha256: sha(data), rank: 0, sources: [], range: { end, sliceBytes: S, sliceSha256: [] } }],
    });
    const two = await digests.complete(m(2 * S), () => path);
    expect(two.files[0]!.range!.sliceSha256).toEqual([sha(data.subarray(0, S)), sha(data.subarray(S, 2 * S))]);
    // The file changes under the same name: what was read stays, only the new slices are read.
    const changed = Buffer.from(data);
    changed.fill(7, 0, 2 * S);
    await writeFile(path, changed);
    const four = await digests.complete(m(4 * S), () => path);
    expect(four.files[0]!.range!.sliceSha256.slice(0, 2)).toEqual(two.files[0]!.range!.sliceSha256);
    expect(four.files[0]!.range!.sliceSha256.slice(2)).toEqual([sha(data.subarray(2 * S, 3 * S)), sha(data.subarray(3 * S, 4 * S))]);
    // A manifest without ranges is returned as it is.
    const plain = { ...m(S), files: [{ ...m(S).files[0]!, range: undefined }] };
    expect(await digests.complete(plain, () => path)).toBe(plain);
  });
});
