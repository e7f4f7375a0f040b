import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { type ClusterConfig, validateCluster } from '../../src/common/config.js';
import { newPlayId } from '../../src/common/play-id.js';
import { signQuery } from '../../src/common/signing.js';
import { createEdgeServer } from '../../src/edge/server.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { type RunningEdge, startEdge } from '../helpers/edge-harness.js';
import { FIXTURES, ORIGIN_ADMIN_TOKEN, type RunningOrigin, authHeader, originTempDir, startTestOrigin } from '../helpers/origin-harness.js';

const SLICE = 65_536;
const TITLE = 'bytes';
const FILE = 'stream_360p.mp4'; // 229,214 bytes: 4 slices

function cluster(base: string, edgeIds: string[], originAdmin = 'http://127.0.0.1:1'): ClusterConfig {
  return validateCluster(
    {
      signing: { keys: { k1: 'origin-test-secret-0123456789' }, activeKey: 'k1' },
      origin: { url: 'http://127.0.0.1:1', adminUrl: originAdmin, dataDir: 'origin' },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
      edges: edgeIds.map((id) => ({ id, isp: 'isp-a', url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: id, diskBytes: 1e7, memoryBytes: 1e6, sliceBytes: SLICE })),
      log: { level: 'silent' },
    },
    base,
  );
}

/**
 * What players pull through a real edge reaches the real origin as per-file, per-slice weights:
 * the edge tallies every body it serves, reports it signed, the origin sums and decays it.
 */
describe("edges' serve reports become the origin's file weights", () => {
  const base = originTempDir();
  let origin: RunningOrigin;
  let edge: RunningEdge;
  let stranger: RunningEdge;

  beforeAll(async () => {
    const originConfig = cluster(base, ['edge-a1']);
    await ingestTitle(originConfig, TITLE, join(FIXTURES, 'hls-bytes'));
    origin = await startTestOrigin(originConfig);
    // The edge's cluster file points at the origin's admin port; the stranger's file names itself an edge the origin's does not.
    edge = await startEdge(cluster(base, ['edge-a1'], origin.adminUrl), origin.publicUrl, { adminToken: ORIGIN_ADMIN_TOKEN, serveReportMs: 0 });
    stranger = await startEdge(cluster(base, ['edge-zz'], origin.adminUrl), origin.publicUrl, { adminToken: ORIGIN_ADMIN_TOKEN, serveReportMs: 0 });
  });
  afterAll(async () => {
    await edge?.close();
    await stranger?.close();
    await origin?.close();
  });

  /** A player's range request with its play id, as steering's URLs carry it. */
  async function play(e: RunningEdge, id: string, from: number, to: number): Promise<string | undefined> {
    const res = await request(`${e.url}${e.signed(TITLE, FILE)}&pl=${id}`, { headers: { range: `bytes=${from}-${to}` } });
    await res.body.arrayBuffer();
    expect(res.statusCode).toBe(206);
    return res.headers['x-cache'] as string | undefined;
  }

  async function outcomes(): Promise<Record<string, number>> {
    const res = await request(`${origin.adminUrl}/metrics`, { headers: authHeader });
    const out: Record<string, number> = {};
    for (const m of (await res.body.text()).matchAll(/^reelcdn_origin_serve_reports_total\{outcome="([^"]+)"\} (\d+)/gm)) out[m[1]!] = Number(m[2]);
    return out;
  }

  it('ten plays, five of which go on past the first slice, weigh the slices 1 and 0.5', async () => {
    const tiers = new Set<string | undefined>();
    for (let i = 0; i < 10; i++) {
      const id = newPlayId();
      // A player reads its first slice in two ranges: the play still counts once.
      tiers.add(await play(edge, id, 0, SLICE / 2 - 1));
      tiers.add(await play(edge, id, SLICE / 2, SLICE - 1));
      if (i % 2 === 0) tiers.add(await play(edge, id, SLICE, 2 * SLICE - 1));
    }
    await edge.idle();
    // Misses and hits are all client demand.
    expect(tiers.has('MISS') && (tiers.has('HIT-MEM') || tiers.has('HIT-DISK'))).toBe(true);
    // A peer filling from this edge is not.
    const peer = await request(`${edge.url}${edge.signed(TITLE, FILE)}`, { headers: { range: `bytes=${2 * SLICE}-${3 * SLICE - 1}`, 'cache-control': 'only-if-cached' } });
    await peer.body.dump();

    await edge.server.serveReports.reporter.reportNow();
    expect((await outcomes()).accepted).toBe(1);
    const w = origin.server.fileWeights();
    expect(w.sliceWeights(TITLE, FILE)).toEqual([1, 0.5]);
    expect(w.weightOf(TITLE, FILE)).toBeCloseTo((15 * SLICE) / 229_214 / 10);
    // Nothing served since: nothing sent.
    await edge.server.serveReports.reporter.reportNow();
    expect((await outcomes()).accepted).toBe(1);
  });

  it("a node the origin's cluster file does not name is refused, however well it signs", async () => {
    for (let i = 0; i < 20; i++) await play(stranger, newPlayId(), 2 * SLICE, 3 * SLICE - 1);
    await stranger.server.serveReports.reporter.reportNow();
    expect(await outcomes()).toMatchObject({ accepted: 1, 'unknown edge': 1 });
    expect(origin.server.fileWeights().sliceWeights(TITLE, FILE)).toEqual([1, 0.5]);
    // Refused numbers are not sent again.
    await stranger.server.serveReports.reporter.reportNow();
    expect((await outcomes())['unknown edge']).toBe(1);
  });

  it('the object routes (no hit path) tally the same numbers as the hit path', async () => {
    const plain = await startEdge(cluster(base, ['edge-a1'], origin.adminUrl), origin.publicUrl, { adminToken: ORIGIN_ADMIN_TOKEN, serveReportMs: 0, hitPath: false });
    try {
      const ids = [newPlayId(), newPlayId(), newPlayId()];
      const ranges: [number, number][] = [
        [0, 99],
        [100, SLICE + 99],
        [3 * SLICE, 229_213],
      ];
      for (const e of [edge, plain]) {
        e.server.serveReports.tally.take();
        for (const id of ids) for (const [a, b] of ranges) await play(e, id, a, b);
        await e.idle();
      }
      const hit = edge.server.serveReports.tally.take();
      expect(plain.server.serveReports.tally.take()).toEqual(hit);
      expect(hit).toEqual([{ title: TITLE, plays: 3, files: [{ file: FILE, requests: 9, bytes: 3 * (100 + SLICE + 229_214 - 3 * SLICE), slices: [3 * SLICE, 300, 0, 3 * (229_214 - 3 * SLICE)] }] }]);
    } finally {
      await plain.close();
    }
  });

  it("a parent edge leaves its child's misses out: the child counted its clients", async () => {
    // A parent in front of the origin, a child in front of the parent (edges[].parent).
    const parent = await startEdge(cluster(base, ['edge-p'], origin.adminUrl), origin.publicUrl, { adminToken: ORIGIN_ADMIN_TOKEN, serveReportMs: 0 });
    const raw = {
      signing: { keys: { k1: 'origin-test-secret-0123456789' }, activeKey: 'k1' },
      origin: { url: 'http://127.0.0.1:1', adminUrl: origin.adminUrl, dataDir: 'origin' },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
      edges: [
        { id: 'edge-c', isp: 'isp-a', url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'c', diskBytes: 1e7, memoryBytes: 1e6, sliceBytes: SLICE, parent: 'edge-p' },
        { id: 'edge-p', isp: 'isp-a', url: parent.url, adminUrl: 'http://127.0.0.1:1', dataDir: 'p', diskBytes: 1e7, memoryBytes: 1e6, sliceBytes: SLICE },
      ],
      log: { level: 'silent' },
    };
    const childConfig = validateCluster(raw, base);
    const child = createEdgeServer({ config: childConfig, edge: childConfig.edges[0]!, adminToken: ORIGIN_ADMIN_TOKEN, autoFill: false, serveReportMs: 0, listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } } });
    try {
      const { publicUrl } = await child.start();
      const path = `/c/${TITLE}/${FILE}`;
      const res = await request(`${publicUrl}${path}?${signQuery(raw.signing.keys, 'k1', path, Date.now() / 1000, 600)}&pl=${newPlayId()}`, { headers: { range: 'bytes=0-999' } });
      await res.body.dump();
      expect(res.statusCode).toBe(206);
      expect(res.headers['x-cache']).toBe('MISS');
      expect(child.serveReports.tally.take()).toEqual([{ title: TITLE, plays: 1, files: [{ file: FILE, requests: 1, bytes: 1000, slices: [1000] }] }]);
      // The parent answered the child's miss (a whole slice) and counted nothing.
      expect(parent.server.serveReports.tally.empty).toBe(true);
    } finally {
      await child.close();
      await parent.close();
    }
  });

  it('numbers the origin could not take go with the next report', async () => {
    await origin.close();
    for (let i = 0; i < 10; i++) await play(edge, newPlayId(), 0, SLICE - 1);
    await edge.server.serveReports.reporter.reportNow(); // refused connection: kept
    origin = await startTestOrigin(cluster(base, ['edge-a1']));
    // The origin came back on other ports: the edge's cluster file follows it (a reload).
    const next = cluster(base, ['edge-a1'], origin.adminUrl);
    await edge.server.reload(next);
    await edge.server.serveReports.reporter.reportNow();
    expect((await outcomes()).accepted).toBe(1);
    // 20 plays all read slice 0, 5 read slice 1 (the sums were kept in served.json).
    expect(origin.server.fileWeights().sliceWeights(TITLE, FILE)).toEqual([1, 0.25]);
  });
});
