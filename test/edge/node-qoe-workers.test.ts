import { type Socket, connect } from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatCmcd } from '../../src/common/cmcd.js';
import type { NodeHealth } from '../../src/edge/cluster/node-health.js';
import { startupBucket } from '../../src/edge/qoe.js';
import { QoeHistory, asQoeCounts } from '../../src/steering/qoe-history.js';
import { randomTitle, tempDir, testCluster, writeMedia } from '../helpers/cluster.js';
import { startEdge } from '../helpers/edge-harness.js';
import { clusterFileForNode, nodeAdmin, nodeHealth, startEdgeNode, untilWorkersUp } from '../helpers/node-cluster.js';
import { parsePrometheusText, sumOf } from '../helpers/prom-parse.js';
import { type RoleProc, killAll, until } from '../helpers/role-proc.js';
import { TestOrigin } from '../helpers/test-origin.js';

/**
 * An edge node of two workers, as deployed by default (one per CPU): its /health qoe block only
 * goes up (a late worker, a restarted one), a player counts once whichever workers its
 * connections reach, and the workers' CMSD du follows the node's status (review P1-1, P2-3, P2-2).
 */
describe('QoE and duress per node, --workers 2', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  const title = randomTitle();

  beforeAll(async () => {
    await origin.start();
    writeMedia(root, title, 'seg.m4s', 4096);
    for (let i = 0; i < 40; i++) writeMedia(root, title, `probe-${i}.m4s`, 16);
  });
  afterAll(async () => {
    killAll();
    await origin.close();
  });

  async function startNode(maxConnections = 20_000) {
    const steering = { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', thresholds: { maxConnections } };
    const node = await startEdgeNode(clusterFileForNode(origin.url, {}, { steering }));
    await untilWorkersUp(node);
    return { proc: node.proc, publicUrl: node.publicUrl, admin: (path: string) => nodeAdmin(node, path), health: () => nodeHealth(node) };
  }

  /** GET through `dispatcher` (a new connection when undefined); its CMSD-Dynamic. */
  async function get(publicUrl: string, path: string, cmcd?: Parameters<typeof formatCmcd>[0], dispatcher?: Agent): Promise<string> {
    const own = dispatcher ? undefined : new Agent({ pipelining: 0 });
    try {
      const q = cmcd ? `?CMCD=${encodeURIComponent(formatCmcd(cmcd))}` : '';
      const res = await request(`${publicUrl}${path}${q}`, { dispatcher: dispatcher ?? own });
      await res.body.arrayBuffer();
      expect(res.statusCode).toBe(200);
      return String(res.headers['cmsd-dynamic']);
    } finally {
      await own?.close();
    }
  }

  /** Keep-alive connections until one is on each worker (found by the pid of its access line). */
  async function oneConnectionPerWorker(proc: RoleProc, publicUrl: string): Promise<Map<number, Agent>> {
    const byPid = new Map<number, Agent>();
    for (let i = 0; i < 40 && byPid.size < 2; i++) {
      const agent = new Agent({ connections: 1, pipelining: 1 });
      await get(publicUrl, `/c/${title}/probe-${i}.m4s`, undefined, agent);
      const line = await until('probe access line', async () => proc.lines().find((l) => l.msg === 'request' && l.path === `/c/${title}/probe-${i}.m4s`));
      const pid = line.pid as number;
      if (byPid.has(pid)) await agent.close();
      else byPid.set(pid, agent);
    }
    expect(byPid.size).toBe(2); // 40 connections on one worker: 1 in 2^39
    return byPid;
  }

  it('itCountsOnePlayerOnBothWorkersAsOneSessionWithOneStartup', async () => {
    const { proc, publicUrl, health, admin } = await startNode();
    const [a, b] = [...(await oneConnectionPerWorker(proc, publicUrl)).values()];
    // Starting on worker A, playing from worker B (its audio and video on two connections).
    await get(publicUrl, `/c/${title}/seg.m4s`, { sid: 'player-1', ot: 'v', br: 1000, su: true }, a);
    await get(publicUrl, `/c/${title}/seg.m4s`, { sid: 'player-1', ot: 'a', br: 128, su: true }, b);
    await new Promise((r) => setTimeout(r, 300));
    await get(publicUrl, `/c/${title}/seg.m4s`, { sid: 'player-1', ot: 'v', br: 1000 }, b);
    await get(publicUrl, `/c/${title}/seg.m4s`, { sid: 'player-1', ot: 'v', br: 1000 }, a);
    const q = await until('the node counted the session', async () => {
      const h = (await health()).qoe;
      return h.startupCounts.some((n) => n > 0) ? h : undefined;
    });
    expect(q).toMatchObject({ sessions: 1, requests: 4, mediaRequests: 4, brCount: 4 });
    const ms = q.startupCounts.findIndex((n) => n > 0);
    expect(q.startupCounts.reduce((x, y) => x + y, 0)).toBe(1);
    // ~300 ms from worker A's su to worker B's first request without; not the later one on A.
    expect(ms).toBeGreaterThanOrEqual(startupBucket(300));
    expect(ms).toBeLessThanOrEqual(startupBucket(1400));
    const m = parsePrometheusText(await admin('/metrics'));
    expect(sumOf(m, 'reelcdn_edge_cmcd_sessions_total')).toBe(1);
    expect(sumOf(m, 'reelcdn_edge_cmcd_active_sessions')).toBe(1);
    expect(sumOf(m, 'reelcdn_edge_cmcd_startup_seconds_count')).toBe(1);
    expect(sumOf(m, 'reelcdn_edge_cmcd_requests_total')).toBe(4);
    await Promise.all([a!.close(), b!.close()]);
    await proc.stop();
  }, 40_000);

  it('itNeverLowersTheNodesQoeCounters: a worker late on one /health, then a worker restarted', async () => {
    const { proc, publicUrl, health } = await startNode();
    const history = new QoeHistory();
    const sample = async (mono: number) => {
      const h = await health();
      history.add(mono, [{ id: 'edge-a1', isp: 'isp-a', qoe: asQoeCounts(h.qoe), uptimeSec: h.uptimeSec }]);
      return h;
    };
    const play = async (n: number, from: number) => {
      for (let i = 0; i < n; i++) await get(publicUrl, `/c/${title}/seg.m4s`, { sid: `s${from + i}`, ot: 'v', br: 1000 });
    };
    await play(30, 0);
    await until('both workers counted', async () => ((await health()).qoe.requests === 30 ? true : undefined));
    await sample(1_000);
    await play(10, 100);
    // Worker 2 stops answering for longer than the primary's stats timeout (2 s): its loop "busy".
    const pids = (await health()).workers.map((w) => w.pid);
    process.kill(pids[1]!, 'SIGSTOP');
    let late: NodeHealth;
    try {
      late = await sample(2_000);
      expect(late.workers.find((w) => w.pid === pids[1])?.status).toBe('down');
    } finally {
      process.kill(pids[1]!, 'SIGCONT');
    }
    expect(late.qoe.requests).toBeGreaterThanOrEqual(30);
    const back = await until('worker 2 answers again', async () => {
      const h = await health();
      return h.workers.every((w) => w.status === 'ok') && h.qoe.requests === 40 ? h : undefined;
    });
    await sample(3_000);
    // Steering's window holds the 10 requests made, not worker 2's history counted again.
    expect(history.window(3_000, [{ id: 'edge-a1', isp: 'isp-a' }]).edges[0]!.qoe?.requests).toBe(10);

    // A worker killed and restarted: its counts stay in the node's.
    process.kill(pids[0]!, 'SIGKILL');
    await until('worker 1 restarted', async () => {
      const h = await health();
      return h.workers.every((w) => w.status === 'ok') && !h.workers.some((w) => w.pid === pids[0]) ? true : undefined;
    });
    const after = await sample(4_000);
    expect(after.qoe.requests).toBe(back.qoe.requests);
    expect(after.qoe.brKbpsSum).toBe(back.qoe.brKbpsSum);
    await play(5, 200);
    await until('new requests counted on top', async () => ((await health()).qoe.requests === 45 ? true : undefined));
    await sample(5_000);
    expect(history.window(5_000, [{ id: 'edge-a1', isp: 'isp-a' }]).edges[0]!.qoe?.requests).toBe(15);
    await proc.stop();
  }, 60_000);

  it('itSaysDuWhenTheNodeIsOverloadedThoughNoWorkerIsOnItsOwn', async () => {
    const maxConnections = 20;
    const { proc, publicUrl, health, admin } = await startNode(maxConnections);
    expect(await get(publicUrl, `/c/${title}/seg.m4s`)).toBe('"edge-a1"');
    const { port } = new URL(publicUrl);
    // 24 idle connections: the node is over its 20, each worker (about 12) is not.
    const idle: Socket[] = [];
    for (let i = 0; i < 24; i++) idle.push(await new Promise<Socket>((resolve, reject) => { const s = connect(Number(port), '127.0.0.1', () => resolve(s)).once('error', reject); }));
    try {
      await until('the node says overloaded', async () => ((await health()).status === 'overloaded' ? true : undefined));
      const perWorker = (await health()).workers.map((w) => w.connections);
      expect(Math.max(...perWorker)).toBeLessThanOrEqual(maxConnections); // no worker over the limit on its own
      // Every answer, through either worker, says du (pushed by the primary within its 1 s poll)...
      await until('du on answers', async () => {
        for (let i = 0; i < 8; i++) if ((await get(publicUrl, `/c/${title}/seg.m4s`)) !== '"edge-a1";du') return undefined;
        return true;
      });
      // ...and prefetch skips as overloaded.
      await get(publicUrl, `/c/${title}/seg.m4s`, { sid: 'pf', ot: 'v', nor: 'probe-39.m4s' });
      await until('prefetch skipped', async () => (sumOf(parsePrometheusText(await admin('/metrics')), 'reelcdn_edge_prefetch_total', { outcome: 'skipped_overload' }) >= 1 ? true : undefined), 5000);
    } finally {
      for (const s of idle) s.destroy();
    }
    await until('ok again', async () => ((await health()).status === 'ok' ? true : undefined));
    await until('no du', async () => {
      for (let i = 0; i < 8; i++) if ((await get(publicUrl, `/c/${title}/seg.m4s`)) !== '"edge-a1"') return undefined;
      return true;
    });
    await proc.stop();
  }, 40_000);

  it('itKeepsDuressAsAFieldOnAOneProcessEdge: set when its connections cross the limit and on drain', async () => {
    const edge = await startEdge(testCluster({}, { steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', thresholds: { maxConnections: 3 } } }), origin.url);
    const { port } = new URL(edge.url);
    const dyn = async () => (await edge.get(title, 'seg.m4s')).headers['cmsd-dynamic'];
    try {
      expect(await dyn()).toBe('"edge-a1"');
      const idle: Socket[] = [];
      for (let i = 0; i < 3; i++) idle.push(await new Promise<Socket>((resolve, reject) => { const s = connect(Number(port), '127.0.0.1', () => resolve(s)).once('error', reject); }));
      await until('connections counted', async () => (edge.server.health().connections >= 3 ? true : undefined));
      expect(await dyn()).toBe('"edge-a1";du'); // the request's own connection is the 4th: over, at once
      for (const s of idle) s.destroy();
      await until('under the limit again', async () => ((await dyn()) === '"edge-a1"' ? true : undefined), 5000);
      edge.server.setDrained(true);
      expect(await dyn()).toBe('"edge-a1";du');
      edge.server.setDrained(false);
      expect(await dyn()).toBe('"edge-a1"');
    } finally {
      await edge.close();
    }
  }, 20_000);
});
