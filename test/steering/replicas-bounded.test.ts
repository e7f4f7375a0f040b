import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { steeringClusterFile } from '../../bench/steering-cluster.js';
import { validateCluster } from '../../src/common/config.js';
import { Ring } from '../../src/common/ring.js';
import { type OriginServer, createOriginServer } from '../../src/origin/server.js';
import { tempDir } from '../helpers/cluster.js';
import { type SteeringReplicas, listedTitles, saveListedTitles, startSteeringReplicas } from '../helpers/steering-replicas.js';
import { KEYS, TOKEN } from '../steering-harness.js';

const TITLES = listedTitles(1000);

/**
 * Edges' admin ports answering /health with a fixed load, as a busy edge would report it:
 * edge-a1 has 400 connections against 100 on its ISP's other two, so at 1.25 × the mean (200)
 * it is over the bound.
 */
const LOADS: Record<string, { connections: number; bytesPerSec: number }> = {
  'edge-a1': { connections: 400, bytesPerSec: 40e6 },
  'edge-a2': { connections: 100, bytesPerSec: 10e6 },
  'edge-a3': { connections: 100, bytesPerSec: 10e6 },
  'edge-b1': { connections: 60, bytesPerSec: 6e6 },
};

async function loadedEdge(id: string): Promise<{ id: string; url: string; app: FastifyInstance }> {
  const app = Fastify();
  app.get('/health', async () => ({ status: 'ok', id, ...LOADS[id], errorRatio: 0, disk: { usedBytes: 0, capacityBytes: 100 } }));
  app.get('/plays', async () => ({ instance: id, next: 0, ids: [], more: false, lost: false }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { id, url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`, app };
}

async function priorities(base: string, query = ''): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < TITLES.length; i += 50) {
    await Promise.all(
      TITLES.slice(i, i + 50).map(async (t) => {
        const res = await request(`${base}/v1/steer/${t}.json${query}`);
        const body = (await res.body.json()) as { 'PATHWAY-PRIORITY': string[] };
        out.set(t, body['PATHWAY-PRIORITY']);
      }),
    );
  }
  return out;
}

describe('two steering processes with bounded loads, fed the same health reports', () => {
  const dir = tempDir();
  let origin: OriginServer;
  let edges: Awaited<ReturnType<typeof loadedEdge>>[] = [];
  let steering: SteeringReplicas | undefined;
  const bases: string[] = [];
  const admins: string[] = [];

  beforeAll(async () => {
    edges = await Promise.all(Object.keys(LOADS).map(loadedEdge));
    const raw = (originUrl: string, originAdminUrl: string) =>
      steeringClusterFile({ keys: KEYS, originUrl, originAdminUrl, steering: { url: 'http://steering.example:80', healthIntervalMs: 400, balanceFactor: 1.25 }, edges, log: 'warn' });
    await saveListedTitles(join(dir, 'origin'), TITLES);
    origin = createOriginServer({
      config: validateCluster(raw('http://127.0.0.1:1', 'http://127.0.0.1:1'), dir),
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      adminToken: TOKEN,
      listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    });
    const urls = await origin.start();
    const file = join(dir, 'cluster.json');
    writeFileSync(file, JSON.stringify(raw(urls.publicUrl, urls.adminUrl)), { mode: 0o600 });
    // Both up, every edge polled (a load is the latest report: no ramp to wait for).
    steering = await startSteeringReplicas(file, 2, { token: TOKEN, readyTitle: TITLES[0]!, edgeCount: edges.length });
    bases.push(...steering.replicas.map((r) => r.base));
    admins.push(...steering.replicas.map((r) => r.admin));
  }, 60_000);

  afterAll(async () => {
    await steering?.stop();
    await origin?.close();
    for (const e of edges) await e.app.close();
  });

  it('agreeOnAThousandDecisionsAndNeitherPutsTheEdgeOverTheBoundFirst', async () => {
    // A few polls: whatever number each replica has made, steady reports give equal loads.
    await new Promise((r) => setTimeout(r, 1000));
    // "Fed the same reports" holds while every poll of both succeeds: on a loaded machine one can
    // time out and flip an edge on one replica for a moment — then the comparison is run again.
    const allUp = async () => {
      for (const a of admins) {
        const res = await request(`${a}/v1/edges`, { headers: { authorization: `Bearer ${TOKEN}` } });
        const body = (await res.body.json()) as { edges: { state: string; failures: number }[] };
        if (!body.edges.every((e) => e.state === 'up' && e.failures === 0)) return false;
      }
      return true;
    };
    let one = new Map<string, string[]>();
    let two = new Map<string, string[]>();
    let differ: string[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const steadyBefore = await allUp();
      [one, two] = [await priorities(bases[0]!), await priorities(bases[1]!)];
      differ = TITLES.filter((t) => JSON.stringify(one.get(t)) !== JSON.stringify(two.get(t)));
      if (differ.length === 0) break;
      if (steadyBefore && (await allUp())) break; // every edge up on both throughout: a real disagreement
    }
    expect(one.size).toBe(TITLES.length);
    expect(differ.map((t) => `${t}: ${one.get(t)!.join(' ')} | ${two.get(t)!.join(' ')}`).slice(0, 5)).toEqual([]);
    // The ring would put edge-a1 first for about a third of the titles; the bound puts it last of isp-a.
    const ring = new Ring(Object.keys(LOADS));
    const ringFirst = TITLES.filter((t) => ring.rank(t).filter((id) => id.startsWith('edge-a'))[0] === 'edge-a1');
    expect(ringFirst.length).toBeGreaterThan(200);
    for (const t of TITLES) {
      const p = one.get(t)!;
      expect(p[0], t).not.toBe('edge-a1');
      expect(p.slice(0, 3).sort(), t).toEqual(['edge-a1', 'edge-a2', 'edge-a3']);
      expect(p[2], t).toBe('edge-a1');
    }
    // Players' hints do not break the agreement: both keep a player on edge-a2 and move one off edge-a1.
    const stay = await Promise.all(bases.map((b) => priorities(b, '?_HLS_pathway=edge-a2&_HLS_throughput=5000000')));
    const moved = await Promise.all(bases.map((b) => priorities(b, '?_HLS_pathway=edge-a1&_HLS_throughput=5000000')));
    for (const t of TITLES) {
      expect(stay[0]!.get(t)![0]).toBe('edge-a2');
      expect(stay[1]!.get(t)).toEqual(stay[0]!.get(t));
      expect(moved[0]!.get(t)).toEqual(one.get(t));
      expect(moved[1]!.get(t)).toEqual(one.get(t));
    }
  });

  it('aReplicaStartedLateAgreesOnceItReadTheNewReports', async () => {
    // The loads move (edge-a1 drains, edge-a3 fills up) and a third replica starts after the
    // change: the two that polled the old reports and the new one rank alike.
    Object.assign(LOADS['edge-a1']!, { connections: 100, bytesPerSec: 10e6 });
    Object.assign(LOADS['edge-a3']!, { connections: 400, bytesPerSec: 40e6 });
    const late = await steering!.add();
    admins.push(late.admin);
    await new Promise((r) => setTimeout(r, 1000)); // every replica polled the new reports
    let all: Map<string, string[]>[] = [];
    let differ: string[] = [];
    for (let attempt = 0; attempt < 3 && (attempt === 0 || differ.length > 0); attempt++) {
      all = [];
      for (const r of steering!.replicas) all.push(await priorities(r.base));
      differ = TITLES.filter((t) => all.some((m) => JSON.stringify(m.get(t)) !== JSON.stringify(all[0]!.get(t))));
    }
    expect(differ.slice(0, 5).map((t) => `${t}: ${all.map((m) => m.get(t)!.join(' ')).join(' | ')}`)).toEqual([]);
    for (const t of TITLES) expect(all[0]!.get(t)![2], t).toBe('edge-a3'); // now the one over the bound
  });
});
