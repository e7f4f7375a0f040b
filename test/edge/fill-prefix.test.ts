import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { type ClusterConfig, validateCluster } from '../../src/common/config.js';
import type { FillFile, FillManifest } from '../../src/common/fill-manifest.js';
import { objectKey } from '../../src/common/paths.js';
import type { StoredMeta } from '../../src/edge/disk-tier.js';
import { entryFilePath } from '../../src/origin/catalog.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { sliceDigestsOf } from '../../src/origin/slice-digests.js';
import { type RunningEdge, startEdge } from '../helpers/edge-harness.js';
import { FIXTURES, type RunningOrigin, authHeader, originTempDir, startTestOrigin } from '../helpers/origin-harness.js';

const SLICE = 65_536;
const TITLE = 'bytes';
const FILE = 'stream_360p.mp4'; // 229,214 bytes: slices 0-2 whole, slice 3 of 32,606
const OTHER = 'stream_180p.mp4'; // 136,051 bytes: 3 slices

/**
 * A single-file byte-range title whose start most plays read: the manifest places its first two
 * slices only (FillFile.range). A real origin serves the bytes and the per-slice digests come
 * from the file as the origin computes them; the manifest is handed out by a small admin server
 * here, so this test does not depend on what the planner decides.
 */
describe('prefix fill of a single-file title (real origin, real edge)', () => {
  let config: ClusterConfig;
  let origin: RunningOrigin;
  let edge: RunningEdge;
  let admin: Server;
  let manifest: FillManifest;
  let bytes: Buffer;
  const key = objectKey(TITLE, FILE);

  async function originServed(): Promise<number> {
    const res = await request(`${origin.adminUrl}/health`, { headers: authHeader });
    return ((await res.body.json()) as { served: { requests: number } }).served.requests;
  }

  beforeAll(async () => {
    const base = originTempDir();
    const raw = {
      signing: { keys: { k1: 'origin-test-secret-0123456789' }, activeKey: 'k1' },
      origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'origin' },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
      // Room for the prefix, the tail and little else: filler pushes the unpinned slices out.
      edges: [{ id: 'edge-a1', isp: 'isp-a', url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'e1', diskBytes: 8 * (SLICE + 4096), memoryBytes: 1, sliceBytes: SLICE }],
      log: { level: 'silent' },
    };
    config = validateCluster(raw, base);
    const entry = await ingestTitle(config, TITLE, join(FIXTURES, 'hls-bytes'));
    origin = await startTestOrigin(config);
    const path = entryFilePath(config.origin.dataDir, entry, FILE);
    bytes = await readFile(path);
    const digests = await sliceDigestsOf(path, SLICE);
    const otherDigests = await sliceDigestsOf(entryFilePath(config.origin.dataDir, entry, OTHER), SLICE);
    const sources = [{ kind: 'origin' as const, id: 'origin', url: origin.publicUrl }];
    const file = (f: string): Omit<FillFile, 'range'> => {
      const c = entry.files.find((x) => x.path === f)!;
      return { title: TITLE, file: f, size: c.size, sha256: c.sha256, rank: 0, sources };
    };
    // The other file's second digest is wrong: its prefix must never be pinned nor served.
    const files: FillFile[] = [
      { ...file(FILE), range: { end: 2 * SLICE, sliceBytes: SLICE, sliceSha256: digests.slice(0, 2) } },
      { ...file(OTHER), rank: 1, range: { end: 2 * SLICE, sliceBytes: SLICE, sliceSha256: [otherDigests[0]!, digests[1]!] } },
    ];
    manifest = { edgeId: 'edge-a1', isp: 'isp-a', version: 'v1', generatedAt: new Date().toISOString(), titles: [TITLE], bytes: 4 * SLICE, files };
    admin = createServer((req, res) => {
      if (req.url !== '/v1/manifests/edge-a1' || req.headers.authorization === undefined) return res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json', etag: `"${manifest.version}"` }).end(JSON.stringify(manifest));
    });
    await new Promise<void>((r) => admin.listen(0, '127.0.0.1', r));
    config = validateCluster({ ...raw, origin: { ...raw.origin, adminUrl: `http://127.0.0.1:${(admin.address() as AddressInfo).port}` } }, base);
    edge = await startEdge(config, origin.publicUrl, { serveReportMs: 0 });
  });

  afterAll(async () => {
    await edge?.close();
    await origin?.close();
    await new Promise((r) => admin?.close(r));
  });

  it('fetches only the prefix, checks each slice against its digest and pins exactly it', async () => {
    const before = await originServed();
    const p = await edge.server.fill.runOnce({ force: true });
    const mine = p.perFile.find((f) => f.file === FILE)!;
    expect(mine).toMatchObject({ status: 'done', size: 2 * SLICE, bytesDone: 2 * SLICE, source: 'origin' });
    // Two slice requests for the prefix, two for the other file (the second fails its digest).
    expect((await originServed()) - before).toBe(4);
    expect(edge.server.disk.sliceIndexes(key).sort()).toEqual([0, 1]);
    expect(edge.server.disk.pinnedBelow(key)).toBe(2);
    expect(edge.server.fill.heldTitles()).toEqual([]); // the other file of the title failed
  });

  it('a slice that does not match its digest is never published', async () => {
    const p = edge.server.fill.progress();
    const bad = p.perFile.find((f) => f.file === OTHER)!;
    expect(bad.status).toBe('failed');
    expect(bad.error).toContain('slice 1 does not match its digest');
    const otherKey = objectKey(TITLE, OTHER);
    expect(edge.server.disk.sliceIndexes(otherKey)).toEqual([]);
    expect(edge.server.disk.pinnedBelow(otherKey)).toBe(0);
    expect(edge.server.disk.stagedSlices(otherKey)).toEqual([]);
  });

  it('the pinned prefix is served as HIT-DISK; the rest of the file fills on demand', async () => {
    const before = await originServed();
    const head = await edge.get(TITLE, FILE, { range: `bytes=0-${2 * SLICE - 1}` });
    expect(head.status).toBe(206);
    expect(head.headers['x-cache']).toBe('HIT-DISK');
    expect(head.body.equals(bytes.subarray(0, 2 * SLICE))).toBe(true);
    expect((await originServed()) - before).toBe(0);

    const tail = await edge.get(TITLE, FILE, { range: `bytes=${2 * SLICE}-` });
    expect(tail.status).toBe(206);
    expect(tail.headers['x-cache']).toBe('MISS');
    expect(tail.body.equals(bytes.subarray(2 * SLICE))).toBe(true);
    await edge.idle();
    expect((await originServed()) - before).toBeGreaterThan(0);
    // Now the whole file is on disk, but only the prefix is pinned.
    expect(edge.server.disk.sliceIndexes(key).sort()).toEqual([0, 1, 2, 3]);
    expect(edge.server.disk.pinnedBelow(key)).toBe(2);
    const whole = await edge.get(TITLE, FILE);
    expect(whole.headers['x-cache']).toBe('HIT-DISK');
    expect(whole.body.equals(bytes)).toBe(true);
  });

  it('under pressure the tail is evicted like any cache, the prefix stays', async () => {
    const meta: StoredMeta = { size: 8 * SLICE, contentType: 'application/octet-stream', etag: '"filler"', storedAt: Date.now() };
    for (let i = 0; i < 8; i++) await edge.server.disk.write(objectKey('filler', 'f.bin'), i, meta, Buffer.alloc(SLICE, i));
    expect(edge.server.disk.sliceIndexes(key).sort()).toEqual([0, 1]);
    const head = await edge.get(TITLE, FILE, { range: `bytes=100-${2 * SLICE - 1}` });
    expect(head.headers['x-cache']).toBe('HIT-DISK');
    expect(head.body.equals(bytes.subarray(100, 2 * SLICE))).toBe(true);
  });

  it('a restarted edge pins the verified prefix again before asking for the manifest', async () => {
    await edge.close();
    edge = await startEdge(config, origin.publicUrl, { serveReportMs: 0 });
    expect(edge.server.disk.pinnedBelow(key)).toBe(2);
    const before = await originServed();
    // The next pass finds it held: nothing fetched for it.
    const p = await edge.server.fill.runOnce({ force: true });
    expect(p.perFile.find((f) => f.file === FILE)).toMatchObject({ status: 'done', source: 'already held' });
    expect((await originServed()) - before).toBe(2); // the other file's two slices, refused again
  });

  it('the manifest growing to the whole file fetches the rest and pins it all; shrinking it unpins the tail', async () => {
    const c = manifest.files[0]!;
    manifest = { ...manifest, version: 'v2', files: [{ ...c, range: undefined }] };
    let p = await edge.server.fill.runOnce({ force: true });
    expect(p.perFile[0]).toMatchObject({ status: 'done' });
    expect(edge.server.disk.pinnedBelow(key)).toBe(Infinity);
    expect(edge.server.fill.heldTitles()).toEqual([TITLE]);
    manifest = { ...manifest, version: 'v3', files: [c] };
    p = await edge.server.fill.runOnce({ force: true });
    expect(p.perFile[0]).toMatchObject({ status: 'done', source: 'already held' });
    expect(edge.server.disk.pinnedBelow(key)).toBe(2);
    expect(edge.server.fill.heldTitles()).toEqual([TITLE]);
    expect((await edge.get(TITLE, FILE)).body.equals(bytes)).toBe(true);
  });
});
