import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TEST_ADMIN_TOKEN, randomTitle, tempDir, writeMedia } from '../../helpers/cluster.js';
import { clusterFileForNode, startEdgeNode } from '../../helpers/node-cluster.js';
import { parsePrometheusText, sumOf } from '../../helpers/prom-parse.js';
import { TestOrigin } from '../../helpers/test-origin.js';
import { makeTestPki } from '../../helpers/certs.js';

const repo = join(import.meta.dirname, '..', '..', '..');
const cli = join(repo, 'dist/src/cli.js');
const SLICE = 65536;

interface NodeProc {
  child: ChildProcess;
  publicUrl: string;
  adminUrl: string;
  exited: Promise<number | null>;
  out(): string;
  /** The CA to trust when the node serves https. */
  ca?: Buffer;
}

interface Health {
  status: string;
  requestsPerSec: number;
  byTier: Record<string, { requests: number; bytes: number }>;
  workers: { worker: number; pid: number; status: string; restarts: number }[];
}

/** A new connection per request: the kernel spreads connections over the workers' sockets. */
async function get(base: string, path: string, headers: Record<string, string> = {}, ca?: Buffer) {
  const dispatcher = new Agent({ pipelining: 0, headersTimeout: 10_000, bodyTimeout: 10_000, ...(ca ? { connect: { ca } } : {}) });
  try {
    const res = await request(`${base}${path}`, { headers, dispatcher });
    const body = Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, headers: res.headers, body };
  } finally {
    await dispatcher.close();
  }
}

async function admin(node: NodeProc, path: string): Promise<string> {
  const dispatcher = node.ca ? new Agent({ connect: { ca: node.ca } }) : undefined;
  try {
    const res = await request(`${node.adminUrl}${path}`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }, dispatcher });
    return await res.body.text();
  } finally {
    await dispatcher?.close();
  }
}

async function health(node: NodeProc): Promise<Health> {
  return JSON.parse(await admin(node, '/health')) as Health;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('an edge node with --workers 2', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  const nodes: NodeProc[] = [];

  function clusterFile(edge: Record<string, unknown> = {}): string {
    return clusterFileForNode(origin.url, edge, { admin: { openHealth: true, openMetrics: true } });
  }

  async function startNode(args: string[] = ['--workers', '2'], edge: Record<string, unknown> = {}): Promise<NodeProc> {
    const n = await startEdgeNode(clusterFile(edge), args);
    const node: NodeProc = { child: n.child, publicUrl: n.publicUrl, adminUrl: n.adminUrl, exited: n.exited, out: n.output };
    nodes.push(node);
    return node;
  }

  beforeAll(async () => {
    if (!existsSync(cli)) throw new Error('dist/src/cli.js is missing: run npm run build');
    await origin.start();
  });
  afterEach(() => origin.reset());
  afterAll(async () => {
    for (const n of nodes) if (n.child.exitCode === null) n.child.kill('SIGKILL');
    await origin.close();
  });

  it('runs two workers on one port, and a slice fetched through one is a disk hit through the other', async () => {
    const node = await startNode();
    const h = await until('two workers up', async () => {
      const v = await health(node);
      return v.workers.length === 2 && v.workers.every((w) => w.status === 'ok') ? v : undefined;
    });
    expect(new Set(h.workers.map((w) => w.pid)).size).toBe(2);

    const title = randomTitle();
    const data = writeMedia(root, title, 'seg.ts', 3 * SLICE + 100);
    const first = await get(node.publicUrl, `/c/${title}/seg.ts`);
    expect(first.status).toBe(200);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.body.equals(data)).toBe(true);
    // New connections land on either worker (the kernel hashes them): ask until both answered.
    const tiers: string[] = [];
    const answeredBy = async (worker: string) => sumOf(parsePrometheusText(await admin(node, '/metrics')), 'reelcdn_edge_worker_requests_total', { worker });
    for (let i = 0; i < 60 && ((await answeredBy('1')) === 0 || (await answeredBy('2')) === 0); i++) {
      const again = await get(node.publicUrl, `/c/${title}/seg.ts`);
      expect(again.status).toBe(200);
      expect(again.body.equals(data)).toBe(true);
      tiers.push(String(again.headers['x-cache']));
    }
    expect(await answeredBy('1')).toBeGreaterThan(0);
    expect(await answeredBy('2')).toBeGreaterThan(0);
    // The worker that did not fetch it read it from the shared disk tier.
    expect(tiers).not.toContain('MISS');
    expect(tiers).toContain('HIT-DISK');
    expect(origin.countFor(`/o/${title}/seg.ts`)).toBe(4);
  });

  it('serves HTTPS from every worker on the one port, and its admin port too', async () => {
    const pki = makeTestPki(tempDir(), ['edge']);
    const node = await startNode(['--workers', '2'], { url: 'https://127.0.0.1:0', adminUrl: 'https://127.0.0.1:0', tls: pki.tls('edge') });
    node.ca = readFileSync(pki.caFile);
    expect(node.publicUrl).toMatch(/^https:/);
    await until('two workers up', async () => {
      const v = await health(node);
      return v.workers.length === 2 && v.workers.every((w) => w.status === 'ok') ? v : undefined;
    });
    const title = randomTitle();
    const data = writeMedia(root, title, 'seg.ts', 2 * SLICE + 7);
    const answeredBy = async (worker: string) => sumOf(parsePrometheusText(await admin(node, '/metrics')), 'reelcdn_edge_worker_requests_total', { worker });
    for (let i = 0; i < 60 && ((await answeredBy('1')) === 0 || (await answeredBy('2')) === 0); i++) {
      const a = await get(node.publicUrl, `/c/${title}/seg.ts`, { range: 'bytes=5-70000' }, node.ca);
      expect(a.status).toBe(206);
      expect(a.body.equals(data.subarray(5, 70001))).toBe(true);
    }
    expect(await answeredBy('1')).toBeGreaterThan(0);
    expect(await answeredBy('2')).toBeGreaterThan(0);
    node.child.kill('SIGTERM');
    expect(await node.exited).toBe(0);
  });

  it('fetches each slice once for 100 concurrent cold requests spread over both workers', async () => {
    const node = nodes[0] ?? (await startNode());
    const title = randomTitle();
    const data = writeMedia(root, title, 'cold.ts', 4 * SLICE - 10);
    origin.behaviour.set(`/o/${title}/cold.ts`, { delayMs: 300 });
    const answers = await Promise.all(Array.from({ length: 100 }, () => get(node.publicUrl, `/c/${title}/cold.ts`)));
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.body.equals(data)).toBe(true);
    }
    const ranges = origin.requests.filter((r) => r.path === `/o/${title}/cold.ts`).map((r) => r.range);
    expect(ranges.sort()).toEqual([`bytes=0-${SLICE - 1}`, `bytes=${SLICE}-${2 * SLICE - 1}`, `bytes=${2 * SLICE}-${3 * SLICE - 1}`, `bytes=${3 * SLICE}-${4 * SLICE - 11}`].sort());
    const metrics = parsePrometheusText(await admin(node, '/metrics'));
    for (const worker of ['1', '2']) expect(sumOf(metrics, 'reelcdn_edge_worker_requests_total', { worker })).toBeGreaterThan(0);
  });

  it('sums the workers in /metrics and /health', async () => {
    const node = await startNode();
    await until('two workers up', async () => ((await health(node)).workers.filter((w) => w.status === 'ok').length === 2 ? true : undefined));
    const title = randomTitle();
    writeMedia(root, title, 'm.ts', SLICE);
    for (let i = 0; i < 10; i++) expect((await get(node.publicUrl, `/c/${title}/m.ts`)).status).toBe(200);
    const metrics = parsePrometheusText(await admin(node, '/metrics'));
    expect(sumOf(metrics, 'reelcdn_edge_requests_total')).toBe(10);
    expect(sumOf(metrics, 'reelcdn_edge_worker_requests_total')).toBe(10);
    expect(sumOf(metrics, 'reelcdn_edge_response_bytes_total')).toBe(10 * SLICE);
    // One upstream fetch for the node, whichever worker made it.
    expect(sumOf(metrics, 'reelcdn_edge_upstream_fetches_total', { result: 'ok' })).toBe(1);
    const h = await health(node);
    const tiers = Object.values(h.byTier).reduce((n, t) => n + t.requests, 0);
    expect(tiers).toBe(10);
    expect(h.byTier.MISS!.requests).toBe(1);
  });

  it('restarts a killed worker while the other keeps answering', async () => {
    const node = await startNode();
    const h = await until('two workers up', async () => {
      const v = await health(node);
      return v.workers.filter((w) => w.status === 'ok').length === 2 ? v : undefined;
    });
    const title = randomTitle();
    const data = writeMedia(root, title, 'k.ts', SLICE);
    for (let i = 0; i < 6; i++) expect((await get(node.publicUrl, `/c/${title}/k.ts`)).status).toBe(200);
    const answeredBefore = sumOf(parsePrometheusText(await admin(node, '/metrics')), 'reelcdn_edge_requests_total');
    expect(answeredBefore).toBe(6);

    const victim = h.workers[0]!;
    process.kill(victim.pid, 'SIGKILL');
    // Every request in the meantime is answered, by the survivor or the new worker. A connection
    // the dying worker had already taken is reset with it, as with any server process: the client
    // retries once, as players do.
    let retried = 0;
    for (let i = 0; i < 20; i++) {
      const a = await get(node.publicUrl, `/c/${title}/k.ts`).catch(() => {
        retried++;
        return get(node.publicUrl, `/c/${title}/k.ts`);
      });
      expect(a.status).toBe(200);
      expect(a.body.equals(data)).toBe(true);
    }
    expect(retried).toBeLessThanOrEqual(1);
    const after = await until('the worker restarted', async () => {
      const v = await health(node);
      const w = v.workers.find((x) => x.worker === victim.worker);
      return w && w.status === 'ok' && w.pid !== victim.pid ? v : undefined;
    });
    expect(after.workers.find((x) => x.worker === victim.worker)!.restarts).toBe(1);
    expect(node.child.exitCode).toBe(null);
    // The node's counters never go back: the dead worker's answers stay counted (Prometheus
    // would read a drop as a reset and count everything again).
    expect(sumOf(parsePrometheusText(await admin(node, '/metrics')), 'reelcdn_edge_requests_total')).toBeGreaterThanOrEqual(answeredBefore + 20);
  });

  it('drains every worker on SIGTERM: the answer in flight completes, then all processes exit', async () => {
    const node = await startNode();
    const h = await until('two workers up', async () => {
      const v = await health(node);
      return v.workers.filter((w) => w.status === 'ok').length === 2 ? v : undefined;
    });
    const title = randomTitle();
    const data = writeMedia(root, title, 'slow.ts', 2 * SLICE);
    origin.behaviour.set(`/o/${title}/slow.ts`, { delayMs: 1500 });
    const inflight = get(node.publicUrl, `/c/${title}/slow.ts`);
    await until('the request reached the origin', async () => (origin.countFor(`/o/${title}/slow.ts`) > 0 ? true : undefined));
    node.child.kill('SIGTERM');
    const a = await inflight;
    expect(a.status).toBe(200);
    expect(a.body.equals(data)).toBe(true);
    expect(await node.exited).toBe(0);
    for (const w of h.workers) expect(pidAlive(w.pid)).toBe(false);
  });

  it('stores the new version of an object on the shared disk once a worker finds it changed upstream', async () => {
    const node = nodes[0] ?? (await startNode());
    const title = randomTitle();
    const path = `/o/${title}/v.ts`;
    origin.behaviour.set(path, { cacheControl: 'max-age=1', etag: '"v1"' });
    writeMedia(root, title, 'v.ts', SLICE, 1);
    const answeredBy = async (worker: string) => sumOf(parsePrometheusText(await admin(node, '/metrics')), 'reelcdn_edge_worker_requests_total', { worker });
    const base = { w1: await answeredBy('1'), w2: await answeredBy('2') };
    // Both workers hold v1.
    for (let i = 0; i < 60 && ((await answeredBy('1')) === base.w1 || (await answeredBy('2')) === base.w2); i++) {
      expect((await get(node.publicUrl, `/c/${title}/v.ts`)).headers.etag).toBe('"v1"');
    }
    // The origin now has v2; once v1 is stale, the workers find it changed.
    origin.behaviour.set(path, { cacheControl: 'max-age=60', etag: '"v2"' });
    const v2 = writeMedia(root, title, 'v.ts', SLICE, 2);
    await new Promise((r) => setTimeout(r, 1100));
    const tiers: string[] = [];
    for (let i = 0; i < 16; i++) {
      const a = await get(node.publicUrl, `/c/${title}/v.ts`);
      expect(a.status).toBe(200);
      expect(a.headers.etag).toBe('"v2"');
      expect(a.body.equals(v2)).toBe(true);
      tiers.push(String(a.headers['x-cache']));
    }
    // Stored once, then served from cache by both workers: not fetched again for every answer. Each
    // worker finds v1 stale on its own; on a loaded machine the second may ask before the first's v2
    // is committed to the shared disk, and fetch it once more — never more than once per worker and
    // that one race.
    expect(tiers.filter((t) => t === 'MISS').length).toBeLessThanOrEqual(3);
    expect(tiers.slice(-8)).not.toContain('MISS');
  });

  it('fails to start, with the reason, when its workers cannot bind the public port', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const r = spawnSync(process.execPath, [cli, 'edge', '--config', clusterFile({ url: `http://127.0.0.1:${port}` }), '--id', 'edge-a1', '--workers', '2'], {
        encoding: 'utf8',
        timeout: 20_000,
        env: { ...process.env, REELCDN_ADMIN_TOKEN: TEST_ADMIN_TOKEN },
      });
      expect(r.signal).toBe(null); // it did not hang until the timeout killed it
      expect(r.status).not.toBe(0);
      expect(r.stderr + r.stdout).toMatch(/EADDRINUSE/);
    } finally {
      blocker.close();
    }
  });

  it('refuses a worker count that is not a positive integer, naming the field', () => {
    for (const bad of ['0', '-1', '1.5', 'two']) {
      const r = spawnSync(process.execPath, [cli, 'edge', '--config', clusterFile(), '--id', 'edge-a1', `--workers=${bad}`], { encoding: 'utf8', timeout: 10_000 });
      expect(r.status).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/--workers/);
    }
    for (const bad of [0, -2, 2.5, '2']) {
      const r = spawnSync(process.execPath, [cli, 'edge', '--config', clusterFile({ workers: bad }), '--id', 'edge-a1'], { encoding: 'utf8', timeout: 10_000 });
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/edges\[0\]\.workers/);
    }
  });
});
