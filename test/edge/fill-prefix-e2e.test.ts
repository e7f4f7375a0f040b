import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { FillManifest } from '../../src/common/fill-manifest.js';
import { newPlayId } from '../../src/common/play-id.js';
import { signQuery } from '../../src/common/signing.js';
import type { EdgeServer } from '../../src/edge/server.js';
import { entryFilePath } from '../../src/origin/catalog.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { CLUSTER_ADMIN_TOKEN, type ClusterFiles, type RunningOrigin, makeCluster, postPlays, startClusterEdge, startOrigin } from '../../bench/offload-cluster.js';
import { FIXTURES } from '../helpers/origin-harness.js';

const SLICE = 65_536;
const TITLE = 'film';
const FILE = 'stream_360p.mp4'; // 229,214 bytes: 4 slices
const auth = { authorization: `Bearer ${CLUSTER_ADMIN_TOKEN}` };

/**
 * The whole loop of issue 13's point 3 with real parts: players pull the start of a single-file
 * title through an edge; the edge reports it; the origin's planner, with no room for the whole
 * title, places the prefix the plays read; the manifest carries the prefix's slice digests; the
 * edge fills and pins exactly that and serves it from disk, the rest on demand.
 */
describe('from what players read to a pinned prefix (real origin, real edge)', () => {
  let cluster: ClusterFiles;
  let origin: RunningOrigin;
  let edge: EdgeServer;
  let bytes: Buffer;

  const url = (file: string, pl?: string) => {
    const path = `/c/${TITLE}/${file}`;
    const q = signQuery(cluster.config.signing.keys, 'k1', path, Date.now() / 1000, 3600);
    return `${cluster.config.edges[0]!.url}${path}?${q}${pl ? `&pl=${pl}` : ''}`;
  };
  async function get(file: string, range?: string, pl?: string): Promise<{ status: number; tier: string; body: Buffer }> {
    const res = await request(url(file, pl), { headers: range ? { range } : {} });
    return { status: res.statusCode, tier: String(res.headers['x-cache']), body: Buffer.from(await res.body.arrayBuffer()) };
  }

  beforeAll(async () => {
    // 250 kB of disk for a 366 kB title: it can only be placed in part.
    cluster = await makeCluster({ edges: 1, diskBytes: 250_000, sliceBytes: SLICE, memoryBytes: 1, headroomRatio: 0 });
    const entry = await ingestTitle(cluster.config, TITLE, join(FIXTURES, 'hls-bytes'));
    bytes = await readFile(entryFilePath(cluster.config.origin.dataDir, entry, FILE));
    origin = await startOrigin(cluster.config);
    await postPlays(cluster.config, Date.now(), { [TITLE]: 10 });
    edge = await startClusterEdge(cluster.config, 0, { serveReportMs: 0 });
  });
  afterAll(async () => {
    await edge?.close();
    await origin?.close();
  });

  it('plans, fills and pins the prefix the plays read', async () => {
    // Without reports the title is one unit too big for the disk: nothing is placed.
    const before = (await (await request(`${cluster.config.origin.adminUrl}/v1/manifests/a1`, { headers: auth })).body.json()) as FillManifest;
    expect(before.files).toEqual([]);

    // Ten plays read the first slice of the 360p rendition, five of them the second too.
    for (let i = 0; i < 10; i++) {
      const pl = newPlayId();
      expect((await get('master.m3u8', undefined, pl)).status).toBe(200);
      expect((await get('stream_360p.m3u8', undefined, pl)).status).toBe(200);
      expect((await get(FILE, `bytes=0-${SLICE - 1}`, pl)).status).toBe(206);
      if (i % 2 === 0) expect((await get(FILE, `bytes=${SLICE}-${2 * SLICE - 1}`, pl)).status).toBe(206);
    }
    await edge.serveReports.reporter.reportNow();
    expect(origin.server.fileWeights().sliceWeights(TITLE, FILE)).toEqual([1, 0.5]);

    // The next plan (replanMs 1 s) places the prefix.
    await new Promise((r) => setTimeout(r, 1100));
    const m = (await (await request(`${cluster.config.origin.adminUrl}/v1/manifests/a1`, { headers: auth })).body.json()) as FillManifest;
    const f = m.files.find((x) => x.file === FILE);
    expect(f?.range, JSON.stringify(m.files.map((x) => [x.file, x.range?.end]))).toBeDefined();
    const end = f!.range!.end;
    expect(end % SLICE).toBe(0);
    expect(end).toBeLessThan(bytes.length);
    // The digests are the file's own slices.
    expect(f!.range!.sliceSha256).toEqual(Array.from({ length: end / SLICE }, (_, i) => createHash('sha256').update(bytes.subarray(i * SLICE, (i + 1) * SLICE)).digest('hex')));
    // No file of the title the players never touched is placed.
    expect(m.files.some((x) => x.file === 'stream_180p.mp4')).toBe(false);

    const p = await edge.fill.runOnce({ force: true });
    expect(p.perFile.find((x) => x.file === FILE)).toMatchObject({ status: 'done', size: end });
    expect(p.files.failed).toBe(0);
    expect(edge.fill.heldTitles()).toEqual([TITLE]);
    const key = JSON.stringify([TITLE, FILE]);
    expect(edge.disk.pinnedBelow(key)).toBe(end / SLICE);

    const head = await get(FILE, `bytes=0-${end - 1}`);
    expect(head.tier).toBe('HIT-DISK');
    expect(head.body.equals(bytes.subarray(0, end))).toBe(true);
    const tail = await get(FILE, `bytes=${end}-`);
    expect(tail.status).toBe(206);
    expect(tail.tier).toBe('MISS');
    expect(tail.body.equals(bytes.subarray(end))).toBe(true);
  });
});
