import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signQuery } from '../../src/common/signing.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import type { EdgeConfig } from '../../src/common/config.js';
import { purgeTiers } from '../../src/steering/ops-routes.js';
import { ADMIN_TOKEN, FIXTURES, type ProcCluster, startProcCluster } from '../helpers/cluster-procs.js';
import { until } from '../helpers/role-proc.js';

/**
 * A purge goes down the parent chains (issue 14, P1-2): edge-a2's misses go to its parent
 * edge-a1, so edge-a2 is purged only once edge-a1 has been. Purged first, under traffic, the
 * child would refill from the parent's copy of the old version and keep it after the purge
 * answered. Real processes; the parent is stopped (SIGSTOP) while the purge runs, so the order
 * shows.
 */
const TITLE = 'tiered';
const FILE = 'chunk-0-00001.m4s';

interface Answer {
  startedAt: number;
  status: number;
  etag: string;
  cache: string;
}

/** When an edge logged its purge (its JSON log lines reach the file in batches: waited for). */
async function purgedAt(logFile: string): Promise<number> {
  return until(`a purge in ${logFile}`, async () => {
    const line = readFileSync(logFile, 'utf8')
      .split('\n')
      .find((l) => l.includes('"msg":"purged"'));
    return line === undefined ? undefined : Date.parse((JSON.parse(line) as { time: string }).time);
  });
}

describe('reelcdn purge with a parent edge (real processes)', () => {
  let c: ProcCluster;
  const versions = mkdtempSync(join(tmpdir(), 'reelcdn-tiered-'));
  // One agent, a connection per request: a request stuck on a stopped parent holds no other.
  const agent = new Agent({ pipelining: 0, connections: 64, headersTimeout: 20_000, bodyTimeout: 20_000 });

  /** The title's folder with FILE's first bytes set to `v` (ingest takes any bytes for a segment). */
  function version(v: number): string {
    const dir = join(versions, `v${v}`);
    cpSync(join(FIXTURES, 'dash'), dir, { recursive: true });
    const data = readFileSync(join(dir, FILE));
    data.fill(v, 0, 64);
    writeFileSync(join(dir, FILE), data);
    return dir;
  }

  const get = async (edgeId: string): Promise<Answer> => {
    const e = c.edges.get(edgeId)!;
    const path = `/c/${TITLE}/${FILE}`;
    const q = signQuery(c.config.signing.keys, c.config.signing.activeKey, path, Date.now() / 1000, 3600);
    const startedAt = Date.now();
    const res = await request(`${e.url}${path}?${q}`, { dispatcher: agent });
    await res.body.dump();
    return { startedAt, status: res.statusCode, etag: String(res.headers.etag), cache: String(res.headers['x-cache']) };
  };

  beforeAll(async () => {
    c = await startProcCluster({ healthIntervalMs: 200, parents: { 'edge-a2': 'edge-a1' } });
    await ingestTitle(c.config, TITLE, version(1));
    await c.origin.reloadCatalog();
  }, 60_000);

  afterAll(async () => {
    const a1 = c?.edges.get('edge-a1')?.child;
    if (a1?.pid) process.kill(a1.pid, 'SIGCONT');
    await c?.close();
    await agent.close();
  });

  it('purgesTheParentBeforeItsChildAndTheChildNeverKeepsTheOldVersion', async () => {
    // The child fills from its parent: both hold version 1.
    const first = await get('edge-a2');
    expect(first).toMatchObject({ status: 200, cache: 'MISS' });
    expect(await get('edge-a2')).toMatchObject({ status: 200, cache: expect.stringMatching(/^HIT/), etag: first.etag });
    expect(await get('edge-a1')).toMatchObject({ status: 200, cache: expect.stringMatching(/^HIT/), etag: first.etag });

    await ingestTitle(c.config, TITLE, version(2));
    await c.origin.reloadCatalog();

    // Traffic on the child all along.
    const answers: Answer[] = [];
    let traffic = true;
    const players = Array.from({ length: 4 }, async () => {
      while (traffic) {
        // A request the old order left waiting on the stopped parent may fail: it is no answer.
        const a = await get('edge-a2').catch(() => undefined);
        if (a) answers.push(a);
        await new Promise((r) => setTimeout(r, 10));
      }
    });

    // The parent stops answering (its purge request waits in its socket); the purge starts.
    const parent = c.edges.get('edge-a1')!.child!;
    process.kill(parent.pid!, 'SIGSTOP');
    const purged = request(`${c.steeringAdminUrl}/v1/purge`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ title: TITLE }),
      headersTimeout: 60_000,
    });
    await new Promise((r) => setTimeout(r, 1500));
    // Its parent has not purged: the child has not been asked, and still holds (and serves) version 1.
    const held = await request(`${c.edges.get('edge-a2')!.adminUrl}/health`, { dispatcher: agent, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(((await held.body.json()) as { disk: { usedBytes: number } }).disk.usedBytes).toBeGreaterThan(0);
    process.kill(parent.pid!, 'SIGCONT');

    const res = await purged;
    const body = (await res.body.json()) as { complete: boolean; edges: { id: string; ok: boolean }[] };
    const answeredAt = Date.now();
    expect(res.statusCode).toBe(200);
    expect(body.complete).toBe(true);
    expect(body.edges.map((e) => [e.id, e.ok])).toEqual([
      ['edge-a1', true],
      ['edge-a2', true],
      ['edge-b1', true],
    ]);
    // The child purged after its parent did.
    expect(await purgedAt(c.edges.get('edge-a2')!.logFile)).toBeGreaterThanOrEqual(await purgedAt(c.edges.get('edge-a1')!.logFile));

    await new Promise((r) => setTimeout(r, 500));
    traffic = false;
    await Promise.all(players);
    // Every request after the purge answered: version 2.
    const after = answers.filter((a) => a.startedAt > answeredAt);
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((a) => a.status === 200)).toBe(true);
    const v2 = after[0]!.etag;
    expect(v2).not.toBe(first.etag);
    expect(after.filter((a) => a.etag !== v2)).toEqual([]);
    expect((await get('edge-a1')).etag).toBe(v2);
  });
});

describe('purgeTiers', () => {
  const edge = (id: string, parent?: string) => ({ id, isp: 'isp-a', ...(parent ? { parent } : {}) }) as EdgeConfig;
  const ids = (tiers: EdgeConfig[][]) => tiers.map((t) => t.map((e) => e.id));

  it('orders the edges by depth in their parent chains, roots first, the file order kept within a tier', () => {
    expect(ids(purgeTiers([edge('c', 'b'), edge('x'), edge('b', 'a'), edge('a'), edge('y', 'a')]))).toEqual([['x', 'a'], ['b', 'y'], ['c']]);
    expect(ids(purgeTiers([edge('a'), edge('b')]))).toEqual([['a', 'b']]);
    expect(ids(purgeTiers([]))).toEqual([]);
  });

  it('takes a parent that is not in the list as none, and ends on a loop', () => {
    expect(ids(purgeTiers([edge('a', 'gone'), edge('b', 'a')]))).toEqual([['a'], ['b']]);
    expect(purgeTiers([edge('a', 'b'), edge('b', 'a')]).flat()).toHaveLength(2);
  });
});
