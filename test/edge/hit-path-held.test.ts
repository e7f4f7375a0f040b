import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signQuery } from '../../src/common/signing.js';
import { MemoryTier, sliceKey } from '../../src/edge/memory-tier.js';
import { ServeTally, ServedFile } from '../../src/edge/serve-report.js';
import { createEdgeServer, type EdgeServer } from '../../src/edge/server.js';
import { seededRandom } from '../../bench/seeded-random.js';
import { TEST_ADMIN_TOKEN, TEST_KEYS, randomTitle, tempDir, testCluster, writeMedia } from '../helpers/cluster.js';
import { TestOrigin } from '../helpers/test-origin.js';

/**
 * A remembered URL keeps its object between requests (EdgeCache.hold: the representation, its
 * first memory slice; the serve report's counters) and checks them instead of looking them up.
 * What it keeps must never outlive what the cache holds: a purged, replaced or expired object,
 * an evicted slice, a report already taken are looked up again.
 */
describe('what a hot URL keeps between requests', () => {
  it('itLetsGoOfASliceTheMemoryTierEvictsDropsOrReplaces, keeping none of its bytes', () => {
    const tier = new MemoryTier({ capacityBytes: 3000 });
    tier.set('a', 0, 'r1', Buffer.alloc(1000, 1));
    const a = tier.entry(sliceKey('a', 0), 'r1')!;
    expect(a.gone).toBe(false);
    expect(a.data.length).toBe(1000);
    for (const k of ['b', 'c', 'd']) tier.set(k, 0, 'r1', Buffer.alloc(1000, 2)); // evicts a
    expect(a.gone).toBe(true);
    expect(a.data.length).toBe(0);
    const b = tier.entry(sliceKey('b', 0), 'r1')!;
    tier.set('b', 0, 'r2', Buffer.alloc(1000, 3)); // replaced by another version
    expect(b.gone).toBe(true);
    const c = tier.entry(sliceKey('c', 0), 'r1')!;
    tier.dropObject('c', 1);
    expect(c.gone).toBe(true);
    // Asked for another representation: the stale slice goes.
    const d = tier.entry(sliceKey('d', 0), 'r1')!;
    expect(tier.entry(sliceKey('d', 0), 'r9')).toBeUndefined();
    expect(d.gone).toBe(true);
    expect(tier.stats().slices).toBe(1);
  });

  it('itCountsThroughHeldCountersWhatServedCounts, across reports taken and given back', () => {
    const sliceBytes = 1000;
    const plain = new ServeTally(sliceBytes);
    const viaHeld = new ServeTally(sliceBytes);
    const files = ['f1', 'f2', 'f3'].map((f) => ({ title: f === 'f3' ? 't2' : 't1', file: f, size: f === 'f1' ? 500 : 4321 }));
    const held = files.map((f) => new ServedFile(f.title, f.file));
    const rnd = seededRandom(3);
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 50; i++) {
        const k = Math.floor(rnd() * files.length);
        const f = files[k]!;
        const start = Math.floor(rnd() * f.size);
        const length = Math.floor(rnd() * (f.size - start + 2)) - 1; // now and then empty or past the end
        const play = rnd() < 0.3 ? `p${Math.floor(rnd() * 5)}` : undefined;
        plain.served(f.title, f.file, f.size, start, length, play);
        viaHeld.servedTo(held[k]!, f.size, start, length, play);
      }
      const [a, b] = [plain.take(), viaHeld.take()];
      expect(b).toEqual(a);
      if (round % 3 === 0) {
        plain.giveBack(a);
        viaHeld.giveBack(b);
      }
    }
  });

  describe('through a real edge', () => {
    const S = 64 * 1024;
    const root = tempDir();
    const origin = new TestOrigin(root);
    let server: EdgeServer;
    let url = '';

    beforeAll(async () => {
      await origin.start();
      const config = testCluster({ sliceBytes: S });
      server = createEdgeServer({
        config,
        edge: config.edges[0]!,
        upstreamUrl: origin.url,
        adminToken: TEST_ADMIN_TOKEN,
        autoFill: false,
        listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      });
      url = (await server.start()).publicUrl;
    });
    afterAll(async () => {
      await server?.close();
      await origin.close();
    });

    const signed = (path: string) => `${path}?${signQuery(TEST_KEYS, 'k1', path, Date.now() / 1000, 3600)}`;
    async function get(pathAndQuery: string, headers: Record<string, string> = {}) {
      const res = await request(`${url}${pathAndQuery}`, { headers });
      return { status: res.statusCode, tier: String(res.headers['x-cache']), etag: res.headers.etag, body: Buffer.from(await res.body.arrayBuffer()) };
    }
    async function hot(u: string): Promise<void> {
      for (let i = 0; i < 5 && (await get(u)).tier !== 'HIT-MEM'; i++) await new Promise((r) => setTimeout(r, 20));
      expect((await get(u)).tier).toBe('HIT-MEM');
    }

    it('itServesThePurgedObjectsNewVersionToAUrlThatHeldTheOld', async () => {
      const title = randomTitle();
      writeMedia(root, title, 'p.mp4', S / 2, 1);
      const u = signed(`/c/${title}/p.mp4`);
      await hot(u);
      const v2 = writeMedia(root, title, 'p.mp4', S / 2 + 7, 2);
      server.cache.purge({ title, file: 'p.mp4' });
      const after = await get(u);
      expect(after.tier).toBe('MISS');
      expect(after.body.equals(v2)).toBe(true);
      // And the new version is what the URL holds from then on.
      await hot(u);
      expect((await get(u)).body.equals(v2)).toBe(true);
      expect((await get(u, { range: 'bytes=0-9' })).body.equals(v2.subarray(0, 10))).toBe(true);
    });

    it('itAsksAgainOnceTheHeldRepresentationIsNoLongerFresh, and serves what changed', async () => {
      const title = randomTitle();
      const path = `/o/${title}/s.mp4`;
      origin.behaviour.set(path, { cacheControl: 'max-age=1', etag: '"v1"' });
      writeMedia(root, title, 's.mp4', S / 4, 1);
      const u = signed(`/c/${title}/s.mp4`);
      await hot(u);
      expect((await get(u)).etag).toBe('"v1"');
      origin.behaviour.set(path, { cacheControl: 'max-age=60', etag: '"v2"' });
      const v2 = writeMedia(root, title, 's.mp4', S / 4, 2);
      await new Promise((r) => setTimeout(r, 1100));
      const after = await get(u);
      expect(after.etag).toBe('"v2"');
      expect(after.body.equals(v2)).toBe(true);
    });

    it('itSharesOneHeldObjectAmongTheUrlsOfAnObject, and each is still checked', async () => {
      const title = randomTitle();
      const data = writeMedia(root, title, 'm.mp4', S / 2, 5);
      const path = `/c/${title}/m.mp4`;
      const u1 = signed(path);
      await hot(u1);
      const key = JSON.stringify([title, 'm.mp4']);
      const held = server.cache.hold(key)!;
      expect(held).toBeDefined();
      expect(server.cache.hold(key)).toBe(held);
      // Another player's URL for the same object: HIT-MEM from its first request.
      const u2 = `${signed(path)}&pl=AAAAAAAAAAAAAAAAAAAAAA`;
      const second = await get(u2);
      expect(second.tier).toBe('HIT-MEM');
      expect(second.body.equals(data)).toBe(true);
      server.cache.purge({ title, file: 'm.mp4' });
      expect(held.retired).toBe(true);
      expect(server.cache.hold(key)).toBeUndefined();
    });
  });
});
