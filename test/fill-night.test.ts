import { crc32 } from 'node:zlib';
import { readFile, readdir, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { FakeClock, VirtualClock } from '../src/common/clock.js';
import type { FillManifest } from '../src/common/fill-manifest.js';
import { objectKey } from '../src/common/paths.js';
import { signQuery } from '../src/common/signing.js';
import { inWindow, parseWindow } from '../src/edge/fill-window.js';
import { DiskTier } from '../src/edge/disk-tier.js';
import { FillAgent } from '../src/edge/fill-agent.js';
import { pino } from 'pino';
import type { EdgeServer } from '../src/edge/server.js';
import { entryFilePath } from '../src/origin/catalog.js';
import { findSliceFiles, sliceFile } from './helpers/slice-files.js';
import {
  CLUSTER_ADMIN_TOKEN,
  type ClusterFiles,
  ingestSynthetic,
  PacedClock,
  makeCluster,
  postPlays,
  type RunningOrigin,
  startClusterEdge,
  startOrigin,
} from '../bench/offload-cluster.js';

const SLICE = 64 * 1024;
const WINDOW = '02:00-06:00';
const TZ = 'Europe/Berlin';
// 01:50 in Berlin (CEST): ten minutes before the window opens.
const EVENING = Date.parse('2024-06-01T23:50:00Z');
const TITLES = ['t1', 't2', 't3', 't4', 't5', 't6', 't7', 't8', 'news'];
const PLAYS: Record<string, number> = { t1: 400, t2: 200, t3: 130, t4: 100, t5: 80, t6: 65, t7: 55, t8: 50 };

const auth = { authorization: `Bearer ${CLUSTER_ADMIN_TOKEN}` };

async function manifestOf(cluster: ClusterFiles, edgeId: string): Promise<FillManifest> {
  const res = await request(`${cluster.config.origin.adminUrl}/v1/manifests/${edgeId}`, { headers: auth });
  expect(res.statusCode).toBe(200);
  return (await res.body.json()) as FillManifest;
}

async function until(what: string, pred: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Everything the edge holds on disk for `key`, in order (undefined if a slice is missing). */
async function bytesOnDisk(edge: EdgeServer, key: string, size: number): Promise<Buffer | undefined> {
  const parts: Buffer[] = [];
  for (let i = 0; i * SLICE < size; i++) {
    const b = await edge.disk.read(key, i);
    if (!b) return undefined;
    parts.push(b);
  }
  return Buffer.concat(parts);
}

describe('overnight fill on a 3-edge ISP (real origin, real edges)', () => {
  let cluster: ClusterFiles;
  let origin: RunningOrigin;
  // 300× real time: the ten minutes before the window pass in two seconds, a 10-minute peer wait in two.
  const clock = new PacedClock(EVENING + 9 * 60_000, 300);
  const edges: EdgeServer[] = [];
  const originFile = (title: string, file: string) => readFile(entryFilePath(cluster.config.origin.dataDir, origin.server.catalog().get(title)!, file));

  beforeAll(async () => {
    cluster = await makeCluster({
      edges: 3,
      // ~2.6 MB of titles per node against ~6.5 MB of catalog: not everything fits everywhere.
      diskBytes: 3_000_000,
      sliceBytes: SLICE,
      window: WINDOW,
      timezone: TZ,
      bytesPerSec: 400_000,
      pollIntervalMs: 3_600_000,
      pinnedTitles: ['news'],
      // No memory tier: what a node serves comes off its disk (the corruption test needs that).
      memoryBytes: 1,
    });
    await ingestSynthetic(cluster.config, TITLES, 3, (i, j) => 150_000 + ((i * 7 + j * 13) % 10) * 10_000);
    origin = await startOrigin(cluster.config, clock);
    await postPlays(cluster.config, EVENING, PLAYS);
  });

  afterAll(async () => {
    await Promise.all(edges.map((e) => e.close().catch(() => {})));
    await origin?.close();
  });

  it('servesManifestsOnlyToAdminsWithAnEtag', async () => {
    const url = `${cluster.config.origin.adminUrl}/v1/manifests/a1`;
    expect((await request(url)).statusCode).toBe(401);
    const res = await request(url, { headers: auth });
    expect(res.statusCode).toBe(200);
    const m = (await res.body.json()) as FillManifest;
    expect(res.headers.etag).toBe(`"${m.version}"`);
    expect((await request(url, { headers: { ...auth, 'if-none-match': `"${m.version}"` } })).statusCode).toBe(304);
    expect((await request(`${cluster.config.origin.adminUrl}/v1/manifests/nope`, { headers: auth })).statusCode).toBe(404);
    const entry = origin.server.catalog().file(m.files[0]!.title, m.files[0]!.file)!;
    expect(m.files[0]).toMatchObject({ size: entry.size, sha256: entry.sha256 });
    expect(m.files[0]!.sources.at(-1)).toMatchObject({ kind: 'origin', url: cluster.config.origin.url });
    expect(m.titles[0]).toBe('news'); // pinned titles first
  });

  it('fetchesNothingOutsideTheWindow', async () => {
    const fake = new FakeClock(Date.parse('2024-06-01T10:00:00Z')); // noon in Berlin
    const e1 = cluster.config.edges[0]!;
    const edge = await startClusterEdge(cluster.config, 0, {
      clock: fake,
      autoFill: true,
      edge: { ...e1, dataDir: join(cluster.base, 'outside-window') },
      listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    });
    try {
      const before = origin.hits.length;
      await new Promise((r) => setTimeout(r, 300));
      fake.advance(60 * 60_000); // 13:00: still closed
      await new Promise((r) => setTimeout(r, 300));
      expect(origin.hits.length).toBe(before);
      expect(edge.fill.progress()).toMatchObject({ state: 'waiting-for-window', windowOpen: false });
      expect(edge.fill.progress().nextWindowStart).toBe('2024-06-02T00:00:00.000Z');
      // The same agent does fetch once its window opens: the silence above was the window's doing.
      fake.set(Date.parse('2024-06-02T00:00:30Z'));
      // Time goes on inside the window (the rate limiter sleeps on this clock too).
      await until('a fill request once the window opens', () => (fake.advance(200), origin.hits.length > before), 10_000);
    } finally {
      // The pass sleeps on the fake clock (rate limit): keep time moving until the node has stopped.
      let closed = false;
      const closing = edge.close().then(() => (closed = true));
      while (!closed) {
        fake.advance(1000);
        await new Promise((r) => setTimeout(r, 5));
      }
      await closing;
    }
  });

  it('holdsTheRateCapOverAMinuteOfVirtualTime', async () => {
    const vclock = new VirtualClock(Date.parse('2024-06-02T01:00:00Z'));
    const e1 = cluster.config.edges[0]!;
    const rate = 40_000;
    // The agent alone (no serving side whose event-loop delay would make it yield on a loaded machine).
    const edgeCfg = { ...e1, dataDir: join(cluster.base, 'rate'), fill: { ...e1.fill, bytesPerSec: rate } };
    const logger = pino({ level: 'silent' });
    const disk = new DiskTier({ dir: edgeCfg.dataDir, capacityBytes: edgeCfg.diskBytes, sliceBytes: edgeCfg.sliceBytes, logger });
    await disk.open();
    const agent = new FillAgent({ config: cluster.config, edge: edgeCfg, disk, clock: vclock, logger, adminToken: CLUSTER_ADMIN_TOKEN });
    await agent.open();
    const edge = { close: () => agent.stop() };
    try {
      const hitsBefore = origin.hits.length;
      const p = await agent.runOnce({ force: true });
      const elapsed = (Date.parse(p.finishedAt!) - Date.parse(p.startedAt!)) / 1000;
      const fromOrigin = origin.hits.slice(hitsBefore).reduce((s, h) => s + h.bytes, 0);
      const measured = fromOrigin / elapsed;
      console.log(`fill rate: ${fromOrigin} bytes in ${elapsed.toFixed(1)} virtual s = ${measured.toFixed(0)} B/s for a cap of ${rate} B/s (${(((measured - rate) / rate) * 100).toFixed(2)}%)`);
      expect(p.files.done).toBe(p.files.total);
      expect(p.bytes.fetched).toBe(fromOrigin);
      expect(elapsed).toBeGreaterThan(50); // a minute-long fill
      expect(Math.abs(measured - rate) / rate).toBeLessThan(0.1);
    } finally {
      await edge.close();
    }
  });

  it('endsTheNightWithEveryNodeHoldingExactlyItsManifestVerified', async () => {
    origin.hits.length = 0;
    for (let i = 0; i < 3; i++) edges.push(await startClusterEdge(cluster.config, i, { clock, autoFill: true }));
    const manifests = await Promise.all(['a1', 'a2', 'a3'].map((id) => manifestOf(cluster, id)));
    await until('every node to hold its manifest', () =>
      edges.every((e, i) => new Set(e.fill.heldTitles()).size === manifests[i]!.titles.length),
    ).catch((err) => {
      for (const e of edges) {
        const p = e.fill.progress();
        console.log(e.health().id, new Date(clock.now()).toISOString(), p.state, p.files, p.bySource, p.errors.slice(-5), p.perFile.filter((f) => f.status !== 'done'));
      }
      throw err;
    });

    const window = parseWindow(WINDOW, TZ);
    expect(origin.hits.length).toBeGreaterThan(0);
    for (const h of origin.hits) expect(inWindow(window, h.at), `origin asked at ${new Date(h.at).toISOString()}`).toBe(true);

    for (const [i, edge] of edges.entries()) {
      const m = manifests[i]!;
      const wanted = new Set(m.files.map((f) => objectKey(f.title, f.file)));
      // Exactly the manifest: nothing more on disk, nothing less, all pinned, nothing left staged.
      expect(new Set(edge.disk.keys())).toEqual(wanted);
      expect(edge.disk.stats().stagedBytes).toBe(0);
      for (const f of m.files) {
        const key = objectKey(f.title, f.file);
        expect(edge.disk.isPinned(key)).toBe(true);
        expect((await bytesOnDisk(edge, key, f.size))!.equals(await originFile(f.title, f.file))).toBe(true);
      }
      expect(new Set(edge.health().fill.heldTitles)).toEqual(new Set(m.titles));
    }

    // Peers before the origin: a file placed on several nodes of the ISP left the origin once.
    const placements = (await (await request(`${cluster.config.origin.adminUrl}/v1/placements`, { headers: auth })).body.json()) as {
      placements: { title: string; nodes: string[] }[];
    };
    let shared = 0;
    for (const p of placements.placements) {
      for (const f of origin.server.catalog().get(p.title)!.files) {
        expect(origin.bytesFor(p.title, f.path), `${p.title}/${f.path} on ${p.nodes.join(',')}`).toBe(f.size);
      }
      if (p.nodes.length > 1) shared++;
    }
    expect(shared).toBeGreaterThanOrEqual(2); // the pinned title and the most popular one at least
    const peerBytes = edges.reduce((s, e) => s + Object.entries(e.fill.progress().bySource).filter(([k]) => k !== 'origin').reduce((a, [, v]) => a + v, 0), 0);
    expect(peerBytes).toBeGreaterThan(0);
    // Titles nobody holds never left the origin.
    const placed = new Set(placements.placements.map((p) => p.title));
    for (const t of TITLES.filter((x) => !placed.has(x))) expect(origin.hits.some((h) => h.path.startsWith(`/o/${t}/`))).toBe(false);
  });

  it('detectsACorruptPeerCopyNeverServesItAndRefetchesFromTheOrigin', async () => {
    // Stop the night's nodes: from here each pass is driven by hand.
    await Promise.all(edges.splice(0).map((e) => e.close()));
    const manifests = await Promise.all(['a1', 'a2', 'a3'].map((id) => manifestOf(cluster, id)));
    // A file some node fills from a peer: flip a byte of the peer's copy on disk.
    let target: { node: number; peer: number; title: string; file: string; size: number } | undefined;
    for (const [node, m] of manifests.entries()) {
      const f = m.files.find((x) => x.sources[0]!.kind === 'peer' && x.size > SLICE);
      if (f) target = { node, peer: Number(f.sources[0]!.id.slice(1)) - 1, title: f.title, file: f.file, size: f.size };
      if (target) break;
    }
    expect(target).toBeDefined();
    const t = target!;
    const key = objectKey(t.title, t.file);
    const peerSlice = sliceFile(cluster.config.edges[t.peer]!.dataDir, key, 1);
    // The damage happened before the bytes were checksummed (a faulty upstream, a bit flip in
    // RAM): the slice's own CRC matches the bad bytes, so only the catalog's sha256 can catch it.
    await writeFile(peerSlice, recheck(await readFile(peerSlice), (data) => (data[data.length - 100]! ^= 0xff)));
    // The node lost its copy (a disk swap): tonight it must fetch it again.
    for (const f of findSliceFiles(cluster.config.edges[t.node]!.dataDir, key)) await rm(f.path);

    const peer = await startClusterEdge(cluster.config, t.peer, { clock });
    const node = await startClusterEdge(cluster.config, t.node, { clock });
    edges.push(peer, node);
    // The peer really does hand out the damaged bytes.
    const path = `/c/${t.title}/${t.file}`;
    const signed = `${path}?${signQuery(cluster.config.signing.keys, 'k1', path, clock.now() / 1000, 3600)}`;
    expect(peer.disk.has(key, 1), 'the peer holds the damaged slice').toBe(true);
    const fromPeer = await request(`${cluster.config.edges[t.peer]!.url}${signed}`, { headers: { 'cache-control': 'only-if-cached' } });
    expect(fromPeer.statusCode).toBe(200);
    const good = await originFile(t.title, t.file);
    expect(Buffer.from(await fromPeer.body.arrayBuffer()).equals(good)).toBe(false);

    origin.hits.length = 0;
    const p = await node.fill.runOnce({ force: true });
    expect(p.errors.some((e) => e.includes(`${t.title}/${t.file}`) && e.includes('sha256 mismatch'))).toBe(true);
    expect(p.files.failed).toBe(0);
    expect(origin.bytesFor(t.title, t.file)).toBe(t.size); // fetched again, from the next source
    expect((await bytesOnDisk(node, key, t.size))!.equals(good)).toBe(true);
    // What the node serves is the verified copy.
    const served = await request(`${cluster.config.edges[t.node]!.url}${signed}`);
    expect(Buffer.from(await served.body.arrayBuffer()).equals(good)).toBe(true);
    expect(node.disk.stats().stagedBytes).toBe(0);
  });
});

/** Rewrites a disk-tier slice file (magic, u32 header length, JSON header, data) after `damage`, with a CRC that matches. */
function recheck(file: Buffer, damage: (data: Buffer) => void): Buffer {
  const magic = 6;
  const headerLen = file.readUInt32BE(magic);
  const header = JSON.parse(file.subarray(magic + 4, magic + 4 + headerLen).toString('utf8')) as { crc32: number };
  const data = Buffer.from(file.subarray(magic + 4 + headerLen));
  damage(data);
  header.crc32 = crc32(data);
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(magic + 4);
  file.copy(prefix, 0, 0, magic);
  prefix.writeUInt32BE(json.length, magic);
  return Buffer.concat([prefix, json, data]);
}
