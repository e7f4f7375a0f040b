import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { steeringClusterFile } from '../../bench/steering-cluster.js';
import { validateCluster } from '../../src/common/config.js';
import { Ring } from '../../src/common/ring.js';
import { Catalog, saveCatalog } from '../../src/origin/catalog.js';
import { type OriginServer, createOriginServer } from '../../src/origin/server.js';
import { tempDir } from '../helpers/cluster.js';
import { KEYS, TOKEN } from '../steering-harness.js';

const CLI = resolve(import.meta.dirname, '..', '..', 'dist', 'src', 'cli.js');
const TITLES = Array.from({ length: 1000 }, (_, i) => `title-${String(i).padStart(4, '0')}`);

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

async function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

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
  const procs: ChildProcess[] = [];
  const bases: string[] = [];
  const admins: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error('dist/ is missing: npm test builds it before vitest');
    edges = await Promise.all(Object.keys(LOADS).map(loadedEdge));
    const raw = (originUrl: string, originAdminUrl: string) =>
      steeringClusterFile({ keys: KEYS, originUrl, originAdminUrl, steering: { url: 'http://steering.example:80', healthIntervalMs: 400, balanceFactor: 1.25 }, edges, log: 'warn' });
    const sha = 'a'.repeat(64);
    mkdirSync(join(dir, 'origin'), { recursive: true });
    await saveCatalog(
      join(dir, 'origin'),
      new Catalog(
        TITLES.map((title) => ({
          title,
          kind: 'hls' as const,
          manifests: ['master.m3u8'],
          files: [{ path: 'master.m3u8', size: 10, sha256: sha, contentType: 'application/vnd.apple.mpegurl' }],
          bytes: 10,
          ingestedAt: new Date(0).toISOString(),
        })),
      ),
    );
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
    for (let i = 0; i < 2; i++) {
      const [p, a] = [await freePort(), await freePort()];
      procs.push(
        spawn(process.execPath, [CLI, 'steering', '--config', file, '--listen', `127.0.0.1:${p}`, '--admin-listen', `127.0.0.1:${a}`], {
          env: { ...process.env, REELCDN_ADMIN_TOKEN: TOKEN },
          stdio: ['ignore', 'ignore', 'inherit'],
        }),
      );
      bases.push(`http://127.0.0.1:${p}`);
      admins.push(`http://127.0.0.1:${a}`);
    }
    // Both up, every edge polled (the first poll takes a load as it is: no ramp to wait for).
    for (const base of bases) {
      const deadline = Date.now() + 20_000;
      for (;;) {
        try {
          const res = await request(`${base}/v1/steer/${TITLES[0]}.json`);
          const body = (await res.body.json()) as { 'PATHWAY-PRIORITY'?: string[] };
          if (body['PATHWAY-PRIORITY']?.length === edges.length) break;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`steering at ${base} did not come up with every edge`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))));
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
});
