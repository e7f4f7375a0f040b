import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatCmcd } from '../../src/common/cmcd.js';
import { randomTitle, tempDir, writeMedia } from '../helpers/cluster.js';
import { clusterFileForNode, nodeAdmin, nodeHealth, startEdgeNode, untilWorkersUp } from '../helpers/node-cluster.js';
import { parsePrometheusText, sumOf } from '../helpers/prom-parse.js';
import { killAll, until } from '../helpers/role-proc.js';
import { TestOrigin } from '../helpers/test-origin.js';

/**
 * A multi-worker node's /health qoe block and CMCD series are its workers' summed (sessions: the
 * primary's one table): players' requests spread over both workers (a new connection each), the
 * node counts every one. An
 * operator's drain of the node reaches its workers (CMSD `du` on their answers).
 */
describe('QoE on an edge node with --workers 2', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);

  beforeAll(async () => {
    await origin.start();
  });
  afterAll(async () => {
    killAll();
    await origin.close();
  });

  it('itSumsTheWorkersQoeInHealthAndMetrics', async () => {
    const node = await startEdgeNode(clusterFileForNode(origin.url));
    const { proc, publicUrl } = node;
    const admin = (path: string) => nodeAdmin(node, path);
    const health = () => nodeHealth(node);
    await untilWorkersUp(node);
    expect((await health()).qoe).toMatchObject({ requests: 0, sessions: 0 });

    const title = randomTitle();
    writeMedia(root, title, 'seg.m4s', 4096);
    const N = 24;
    for (let i = 0; i < N; i++) {
      // A new connection per request: the kernel spreads them over the workers' sockets.
      const dispatcher = new Agent({ pipelining: 0 });
      try {
        const cmcd = encodeURIComponent(formatCmcd({ sid: `node-${i}`, ot: 'v', br: 1000, bl: 2000, bs: i % 4 === 0 }));
        const res = await request(`${publicUrl}/c/${title}/seg.m4s?CMCD=${cmcd}`, { dispatcher });
        await res.body.arrayBuffer();
        expect(res.statusCode).toBe(200);
        expect(res.headers['cmsd-dynamic']).toBe('"edge-a1"');
      } finally {
        await dispatcher.close();
      }
    }
    // Sessions are the primary's (the workers forward sightings, applied once settled): poll.
    const q = await until('the node counted every session', async () => {
      const h = (await health()).qoe;
      return h.sessions === N ? h : undefined;
    });
    expect(q).toMatchObject({ requests: N, sessions: N, mediaRequests: N, starved: N / 4, brKbpsSum: N * 1000, brCount: N, blMsSum: N * 2000, blCount: N });
    const m = parsePrometheusText(await admin('/metrics'));
    expect(sumOf(m, 'reelcdn_edge_cmcd_requests_total', { ot: 'v' })).toBe(N);
    expect(sumOf(m, 'reelcdn_edge_cmcd_sessions_total')).toBe(N);
    expect(sumOf(m, 'reelcdn_edge_cmcd_active_sessions')).toBe(N);
    expect(sumOf(m, 'reelcdn_edge_cmcd_bitrate_kbps_count')).toBe(N);
    // The workers' access lines carry the sessions.
    await until('access lines', async () => (proc.lines().filter((l) => l.msg === 'request' && typeof l.sid === 'string').length === N ? true : undefined));
    const pids = new Set(proc.lines().filter((l) => l.msg === 'request').map((l) => l.pid));
    expect(pids.size).toBe(2); // both workers answered (24 connections on one: 1 in 8 million)

    // An operator's drain reaches every worker: their answers say duress, and a worker restarted meanwhile starts drained.
    const dynamics = async (n: number) => {
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) {
        const dispatcher = new Agent({ pipelining: 0 });
        try {
          const res = await request(`${publicUrl}/c/${title}/seg.m4s`, { dispatcher });
          await res.body.arrayBuffer();
          seen.add(`${res.statusCode} ${String(res.headers['cmsd-dynamic'])}`);
        } finally {
          await dispatcher.close();
        }
      }
      return [...seen];
    };
    const post = (path: string) => nodeAdmin(node, path, 'POST');
    await post('/drain');
    expect(await dynamics(16)).toEqual(['200 "edge-a1";du']);
    const pidsBefore = new Set((await health()).workers.map((w) => w.pid));
    process.kill([...pidsBefore][0]!, 'SIGKILL');
    const fresh = await until('worker restarted and listening', async () => proc.lines().find((l) => l.msg === 'edge worker listening' && !pidsBefore.has(l.pid as number))?.pid as number | undefined);
    const from = proc.lines().length;
    expect(await dynamics(16)).toEqual(['200 "edge-a1";du']);
    await until('the restarted worker answered some', async () => (proc.lines().slice(from).some((l) => l.msg === 'request' && l.pid === fresh) ? true : undefined), 3000);
    await post('/undrain');
    expect(await dynamics(16)).toEqual(['200 "edge-a1"']);
    await proc.stop();
  }, 30_000);
});
