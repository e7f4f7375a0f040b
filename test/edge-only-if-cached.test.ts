import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { objectKey } from '../src/common/paths.js';
import { randomTitle, tempDir, testCluster, writeMedia } from './helpers/cluster.js';
import { startEdge, type RunningEdge } from './helpers/edge-harness.js';
import { TestOrigin } from './helpers/test-origin.js';
import { sliceFile } from './helpers/slice-files.js';

describe('only-if-cached (how peers fill from each other)', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  const config = testCluster({ sliceBytes: 65536, memoryBytes: 4096 });
  let edge: RunningEdge;
  const title = randomTitle();
  let data: Buffer;
  const onlyIfCached = { 'cache-control': 'only-if-cached' };

  beforeAll(async () => {
    data = writeMedia(root, title, 'seg.m4s', 3 * 65536 + 500);
    await origin.start();
    edge = await startEdge(config, origin.url);
  });
  afterAll(async () => {
    await edge.close();
    await origin.close();
  });

  it('answers 504 for what it does not hold and never goes upstream for it', async () => {
    const r = await edge.get(title, 'seg.m4s', { ...onlyIfCached, range: 'bytes=0-65535' });
    expect(r.status).toBe(504);
    expect(origin.requests).toHaveLength(0);
  });

  it('serves held slices, and 504 for the part of a range it lacks', async () => {
    await edge.get(title, 'seg.m4s', { range: 'bytes=0-100' }); // caches slice 0
    await edge.idle();
    const before = origin.requests.length;
    const held = await edge.get(title, 'seg.m4s', { ...onlyIfCached, range: 'bytes=0-65535' });
    expect(held.status).toBe(206);
    expect(held.body.equals(data.subarray(0, 65536))).toBe(true);
    const partly = await edge.get(title, 'seg.m4s', { ...onlyIfCached, range: 'bytes=0-70000' });
    expect(partly.status).toBe(504);
    expect(origin.requests.length).toBe(before);
  });

  it('answers 504, not damaged bytes and not an upstream fetch, when a held slice fails its checksum', async () => {
    await edge.get(title, 'seg.m4s', { range: 'bytes=65536-65600' }); // caches slice 1
    await edge.idle();
    const file = sliceFile(config.edges[0]!.dataDir, objectKey(title, 'seg.m4s'), 1);
    const buf = readFileSync(file);
    buf[buf.length - 1]! ^= 0xff;
    writeFileSync(file, buf);
    const before = origin.requests.length;
    const r = await edge.get(title, 'seg.m4s', { ...onlyIfCached, range: 'bytes=65536-131071' });
    expect(r.status).toBe(504);
    expect(origin.requests.length).toBe(before);
    // An ordinary request refetches the dropped slice and serves the right bytes.
    const again = await edge.get(title, 'seg.m4s', { range: 'bytes=65536-131071' });
    expect(again.status).toBe(206);
    expect(again.body.equals(data.subarray(65536, 131072))).toBe(true);
  });
});
