import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signQuery } from '../../src/common/signing.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { FIXTURES, type ProcCluster, TITLES, startProcCluster } from '../helpers/cluster-procs.js';
import { operatorClusterFile, reelcdn as cli, steeringEdges } from '../helpers/operator.js';
import { until } from '../helpers/role-proc.js';

/**
 * `reelcdn status` and `reelcdn purge` against a real cluster: three `reelcdn edge` processes, a
 * real origin and steering, one edge killed with SIGKILL along the way.
 */

/** A title the purges below must leave alone: its id does not start with "bbb-". */
const KEPT = 'kept-dash';
const HLS_FILE = 'stream_180p.mp4';
const DASH_FILE = 'chunk-0-00001.m4s';

describe('reelcdn status and purge (real processes)', () => {
  let c: ProcCluster;
  /** The cluster file as an operator's would read: steering's admin URL is where it listens. */
  let file: string;

  /** GET a file from one edge (signed); its X-Cache. */
  const fetchFrom = async (edgeId: string, title: string, f: string): Promise<string> => {
    const e = c.edges.get(edgeId)!;
    const path = `/c/${title}/${f}`;
    const q = signQuery(c.config.signing.keys, c.config.signing.activeKey, path, Date.now() / 1000, 3600);
    const res = await request(`${e.url}${path}?${q}`, { dispatcher: c.dispatcher });
    await res.body.dump();
    expect(res.statusCode, `${edgeId} ${path}`).toBe(200);
    return String(res.headers['x-cache']);
  };
  const warm = async (edgeId: string) => {
    for (const [t, f] of [[TITLES.hlsBytes, HLS_FILE], [TITLES.dash, DASH_FILE], [KEPT, DASH_FILE]] as const) {
      await fetchFrom(edgeId, t, f);
      expect(await fetchFrom(edgeId, t, f), `${edgeId} ${t}/${f} warm`).toMatch(/^HIT/);
    }
  };

  beforeAll(async () => {
    c = await startProcCluster({ healthIntervalMs: 200, downAfter: 2, upAfter: 2 });
    await ingestTitle(c.config, KEPT, join(FIXTURES, 'dash'));
    await c.origin.reloadCatalog();
    file = operatorClusterFile(c);
  }, 60_000);

  afterAll(async () => {
    await c?.close();
  });

  it('showsEveryEdgeUpWithItsNumbers', async () => {
    for (const id of c.edges.keys()) await warm(id);
    // The hit ratios come from the edges' health reports: wait until steering polled them after the traffic.
    await until('steering to see every edge at a 50% hit ratio', async () =>
      (await steeringEdges(c)).every((e) => e.health?.hitRatio?.requests === 0.5) ? true : undefined,
    );
    const r = await cli(['status', '--config', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^EDGE\s+ISP\s+STATE\s+HIT REQ\s+HIT BYTES\s+THROUGHPUT\s+CONNS\s+DISK\s+FILL\s+REASON$/);
    for (const id of c.edges.keys()) {
      const line = lines.find((l) => l.startsWith(`${id} `));
      expect(line, id).toMatch(new RegExp(`^${id}\\s+isp-[ab]\\s+up\\s+50\\.0%\\s+\\d+\\.\\d%\\s+\\S+ \\S+/s\\s+\\d+\\s+\\S+ \\S+/\\S+ \\S+ \\S+%\\s+(idle|waiting-for-window) 0/0\\s+ok$`));
    }
    expect(lines.at(-1)).toBe('3 of 3 edges take new sessions');
    const j = JSON.parse((await cli(['status', '--config', file, '--json'])).stdout) as { edges: { id: string; state: string; hitRatio: { requests: number } }[] };
    expect(j.edges.map((e) => [e.id, e.state])).toEqual([['edge-a1', 'up'], ['edge-a2', 'up'], ['edge-b1', 'up']]);
    expect(j.edges[0]!.hitRatio.requests).toBe(0.5);
  });

  it('showsAKilledEdgeDownWithItsReason', async () => {
    await c.killEdge('edge-a2');
    await until('steering to see edge-a2 down', async () => ((await c.edgeState('edge-a2')).state === 'down' ? true : undefined));
    const r = await cli(['status', '--config', file]);
    expect(r.code).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith('edge-a2 '));
    // No numbers for an edge whose polls fail: the last ones would read as current.
    expect(line).toMatch(/^edge-a2\s+isp-a\s+down\s+-\s+-\s+-\s+-\s+-\s+-\s+poll failed: .*ECONNREFUSED/);
    expect(r.stdout).toContain('2 of 3 edges take new sessions; not: edge-a2');
    const j = JSON.parse((await cli(['status', '--config', file, '--json'])).stdout) as { edges: { id: string; state: string; eligible: boolean; stale: boolean; reason: string }[] };
    expect(j.edges.find((e) => e.id === 'edge-a2')).toMatchObject({ state: 'down', eligible: false, stale: true, reason: expect.stringMatching(/^poll failed/) });
  });

  it('purgesAPrefixFromEveryEdgeAndReportsTheUnreachableOne', async () => {
    const t0 = Date.now();
    const r = await cli(['purge', '--config', file, '--prefix', 'bbb-']);
    const took = Date.now() - t0;
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^purge of titles starting "bbb-" on 3 edges \(through http:\/\/127\.0\.0\.1:\d+\):\n/);
    expect(r.stdout).toMatch(/\n {2}edge-a1 {2}purged 2 objects, \S+ \S+\n/);
    expect(r.stdout).toMatch(/\n {2}edge-b1 {2}purged 2 objects, \S+ \S+\n/);
    // Asked four times: at once, then after 0.5, 1 and 2 s.
    expect(r.stdout).toMatch(/\n {2}edge-a2 {2}NOT purged \(after 4 attempts\): cannot be reached at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)\n/);
    expect(r.stdout).toMatch(/\npurged on 2 of 3 edges; not on edge-a2\n$/);
    expect(took).toBeGreaterThanOrEqual(3500);
    // The next request for a purged title is a MISS on every edge that took it; the other title stays.
    for (const id of ['edge-a1', 'edge-b1']) {
      expect(await fetchFrom(id, TITLES.hlsBytes, HLS_FILE), `${id} hls`).toBe('MISS');
      expect(await fetchFrom(id, TITLES.dash, DASH_FILE), `${id} dash`).toBe('MISS');
      expect(await fetchFrom(id, KEPT, DASH_FILE), `${id} kept`).toMatch(/^HIT/);
    }
  });

  it('purgesTheEdgeThatWasDownOnceItIsBack', async () => {
    await c.startEdge('edge-a2');
    // It kept its disk across the kill: the titles are still there.
    expect(await fetchFrom('edge-a2', TITLES.hlsBytes, HLS_FILE)).toBe('HIT-DISK');
    const r = await cli(['purge', '--config', file, '--prefix', 'bbb-', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const a = JSON.parse(r.stdout) as { complete: boolean; edges: { id: string; ok: boolean; attempts: number }[] };
    expect(a.complete).toBe(true);
    expect(a.edges.map((e) => [e.id, e.ok, e.attempts])).toEqual([['edge-a1', true, 1], ['edge-a2', true, 1], ['edge-b1', true, 1]]);
    expect(await fetchFrom('edge-a2', TITLES.hlsBytes, HLS_FILE)).toBe('MISS');
    expect(await fetchFrom('edge-a2', KEPT, DASH_FILE)).toMatch(/^HIT/);
  });

  it('purgesOneFileOrAPathPrefixOfOneTitle', async () => {
    for (const id of ['edge-a1', 'edge-b1']) {
      await fetchFrom(id, KEPT, 'chunk-1-00001.m4s');
      await fetchFrom(id, KEPT, 'chunk-2-00001.m4s');
    }
    const file1 = await cli(['purge', '--config', file, '--title', KEPT, '--file', 'chunk-1-00001.m4s']);
    expect(file1.code, file1.stderr).toBe(0);
    expect(file1.stdout).toContain(`purge of ${KEPT}/chunk-1-00001.m4s on 3 edges`);
    const under = await cli(['purge', '--config', file, '--title', KEPT, '--prefix', 'chunk-0-']);
    expect(under.stdout).toContain(`purge of files of ${KEPT} starting "chunk-0-" on 3 edges`);
    for (const id of ['edge-a1', 'edge-b1']) {
      expect(await fetchFrom(id, KEPT, 'chunk-1-00001.m4s')).toBe('MISS');
      expect(await fetchFrom(id, KEPT, DASH_FILE)).toBe('MISS');
      expect(await fetchFrom(id, KEPT, 'chunk-2-00001.m4s')).toMatch(/^HIT/);
    }
  });

  it('refusesABadPurgeAndAWrongToken', async () => {
    const both = await cli(['purge', '--config', file, '--title', KEPT, '--file', 'a', '--prefix', 'b']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('purge takes --file or --prefix, not both');
    const bad = await cli(['purge', '--config', file, '--title', '../x']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('reelcdn: steering answered HTTP 400: title: "../x" is not a title id\n');
    const token = await cli(['purge', '--config', file, '--title', KEPT], { REELCDN_ADMIN_TOKEN: 'wrong' });
    expect(token.code).toBe(1);
    expect(token.stderr).toBe('reelcdn: steering refused the admin token (HTTP 401): set REELCDN_ADMIN_TOKEN\n');
    const st = await cli(['status', '--config', file], { REELCDN_ADMIN_TOKEN: 'wrong' });
    expect(st.stderr).toBe('reelcdn: steering refused the admin token (HTTP 401): set REELCDN_ADMIN_TOKEN\n');
    const dead = await cli(['status', '--config', c.clusterFile]);
    expect(dead.code).toBe(1);
    expect(dead.stderr).toMatch(/^reelcdn: steering's admin port http:\/\/127\.0\.0\.1:1 cannot be reached \(ECONNREFUSED\)/);
  });
});
