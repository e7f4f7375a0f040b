import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { steeringClusterFile } from '../bench/steering-cluster.js';
import { validateCluster } from '../src/common/config.js';
import { type OriginServer, createOriginServer } from '../src/origin/server.js';
import { tempDir } from './helpers/cluster.js';
import { type SteeringReplicas, listedTitles, saveListedTitles, startSteeringReplicas } from './helpers/steering-replicas.js';
import { FakeEdgeHealth, KEYS, TOKEN } from './steering-harness.js';

const TITLES = listedTitles(1000);

async function rankings(base: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < TITLES.length; i += 50) {
    await Promise.all(
      TITLES.slice(i, i + 50).map(async (t) => {
        const res = await request(`${base}/v1/steer/${t}.json`);
        const body = (await res.body.json()) as { 'PATHWAY-PRIORITY': string[] };
        out.set(t, body['PATHWAY-PRIORITY']);
      }),
    );
  }
  return out;
}

/** Rankings from `base` once it no longer offers `edgeId` for any title. */
async function rankingsOnceDown(base: string, edgeId: string): Promise<Map<string, string[]>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await rankings(base);
    if (![...r.values()].some((list) => list.includes(edgeId))) return r;
    if (Date.now() > deadline) throw new Error(`${base} never marked ${edgeId} down`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

describe('two steering processes on one cluster file', () => {
  const dir = tempDir();
  let origin: OriginServer;
  const edges = ['edge-a1', 'edge-a2', 'edge-a3', 'edge-b1'].map((id) => new FakeEdgeHealth(id));
  let steering: SteeringReplicas | undefined;
  const bases: string[] = [];

  beforeAll(async () => {
    for (const e of edges) await e.start();
    const raw = (originUrl: string, originAdminUrl: string) =>
      steeringClusterFile({
        keys: KEYS,
        originUrl,
        originAdminUrl,
        // Four missed polls before down: a loaded machine's slow poll must not take a live edge away mid-test.
        steering: { url: 'http://steering.example:80', healthIntervalMs: 100, downAfter: 4, upAfter: 1 },
        edges,
        log: 'warn',
      });
    // 1,000 titles in the catalog (steering only needs their listing, not their bytes).
    await saveListedTitles(join(dir, 'origin'), TITLES);
    const bootstrap = validateCluster(raw('http://127.0.0.1:1', 'http://127.0.0.1:1'), dir);
    origin = createOriginServer({
      config: bootstrap,
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      adminToken: TOKEN,
      listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    });
    const urls = await origin.start();
    const file = join(dir, 'cluster.json');
    writeFileSync(file, JSON.stringify(raw(urls.publicUrl, urls.adminUrl)));

    // Both up, with every edge polled and eligible.
    steering = await startSteeringReplicas(file, 2, { token: TOKEN, readyTitle: TITLES[0]!, edgeCount: edges.length });
    bases.push(...steering.replicas.map((r) => r.base));
  }, 60_000);

  afterAll(async () => {
    await steering?.stop();
    await origin?.close();
    for (const e of edges) await e.stop();
  });

  it('givesIdenticalRankingsForAThousandTitlesAndRemovingAnEdgeMovesOnlyItsTitles', async () => {
    const [one, two] = [await rankings(bases[0]!), await rankings(bases[1]!)];
    expect(one.size).toBe(TITLES.length);
    for (const t of TITLES) expect(two.get(t), t).toEqual(one.get(t));
    // The ring spreads titles: every ISP-a edge is first for some of them.
    const firsts = new Set([...one.values()].map((r) => r[0]));
    expect(firsts).toEqual(new Set(['edge-a1', 'edge-a2', 'edge-a3']));

    // Take edge-a2 away: steering marks it down; every other edge keeps its titles and order.
    await edges[1]!.stop();
    const after = await rankingsOnceDown(bases[0]!, 'edge-a2');
    let moved = 0;
    for (const t of TITLES) {
      const before = one.get(t)!;
      expect(after.get(t), t).toEqual(before.filter((id) => id !== 'edge-a2'));
      if (before[0] === 'edge-a2') moved++;
      else expect(after.get(t)![0]).toBe(before[0]);
    }
    expect(moved).toBeGreaterThan(200); // about a third of 1,000 titles were edge-a2's
    expect(moved).toBeLessThan(450);
    const other = await rankingsOnceDown(bases[1]!, 'edge-a2');
    for (const t of TITLES) expect(other.get(t), t).toEqual(after.get(t));
  });
});
