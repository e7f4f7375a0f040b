import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cmcdHeaders } from '../../src/common/cmcd.js';
import { TEST_ADMIN_TOKEN, randomTitle, tempDir, writeMedia } from '../helpers/cluster.js';
import { clusterFileForNode, startEdgeNode, untilWorkersUp } from '../helpers/node-cluster.js';
import { parsePrometheusText, sumOf } from '../helpers/prom-parse.js';
import { killAll, until } from '../helpers/role-proc.js';
import { TestOrigin } from '../helpers/test-origin.js';

/**
 * Prefetch on a node as deployed: two workers on one port (SO_REUSEPORT), each with its own
 * memory tier, one disk tier. A prefetch runs in the worker that answered the request naming the
 * next segment and lands in that worker's memory (and the node's disk). A player that keeps its
 * connection (every browser does, HTTP/2 or keep-alive) asks the same worker next: HIT-MEM. One
 * that opens a connection per request lands on either worker: HIT-MEM on the one that
 * prefetched, HIT-DISK on the other — never a MISS.
 */
const SLICE = 65536;
const SEGMENTS = 12;

describe('prefetch on a node of two workers', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  let publicUrl = '';
  let adminUrl = '';

  async function metrics(): Promise<ReturnType<typeof parsePrometheusText>> {
    const res = await request(`${adminUrl}/metrics`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
    return parsePrometheusText(await res.body.text());
  }

  /** role-proc's until, for a yes/no probe. */
  const waitFor = (what: string, probe: () => Promise<boolean>) => until(what, async () => ((await probe()) ? true : undefined));

  beforeAll(async () => {
    await origin.start();
    const node = await startEdgeNode(clusterFileForNode(origin.url, { memoryBytes: 40_000_000, sliceBytes: SLICE }, { admin: { openHealth: true, openMetrics: true } }));
    publicUrl = node.publicUrl;
    adminUrl = node.adminUrl;
    await untilWorkersUp(node);
  });

  afterAll(async () => {
    killAll();
    await origin.close();
  });

  /**
   * A player reading SEGMENTS segments in order, each request naming the next one, waiting for
   * the prefetch it asked for before the next request (a player takes a segment's duration).
   */
  async function play(newConnectionEach: boolean): Promise<string[]> {
    const title = randomTitle();
    for (let i = 0; i < SEGMENTS; i++) writeMedia(root, title, `v/seg${i}.m4s`, 2 * SLICE + 100 * (i + 1), i + 1);
    const keep = new Agent({ connections: 1, pipelining: 1 });
    const tiers: string[] = [];
    try {
      for (let i = 0; i < SEGMENTS; i++) {
        const done = sumOf(await metrics(), 'reelcdn_edge_prefetch_total', { outcome: 'done' });
        const dispatcher = newConnectionEach ? new Agent({ pipelining: 0 }) : keep;
        const nor = i + 1 < SEGMENTS ? { nor: `seg${i + 1}.m4s`, bl: 8000 } : {};
        const res = await request(`${publicUrl}/c/${title}/v/seg${i}.m4s`, { dispatcher, headers: cmcdHeaders({ ot: 'v', ...nor }) });
        await res.body.arrayBuffer();
        expect(res.statusCode).toBe(200);
        tiers.push(String(res.headers['x-cache']));
        if (newConnectionEach) await dispatcher.close();
        if (i + 1 < SEGMENTS) await waitFor('the prefetch', async () => sumOf(await metrics(), 'reelcdn_edge_prefetch_total', { outcome: 'done' }) > done);
      }
    } finally {
      await keep.close();
    }
    // Each slice of each segment fetched from the origin once.
    for (let i = 0; i < SEGMENTS; i++) expect(origin.countFor(`/o/${title}/v/seg${i}.m4s`)).toBe(3);
    return tiers;
  }

  it('itServesEverySegmentAfterTheFirstFromMemoryToAPlayerOnOneConnection', async () => {
    const tiers = await play(false);
    expect(tiers[0]).toBe('MISS');
    expect(tiers.slice(1)).toEqual(Array(SEGMENTS - 1).fill('HIT-MEM'));
  });

  it('itNeverMissesForAPlayerOpeningAConnectionPerRequest (memory on the worker that prefetched, disk on the other)', async () => {
    const tiers = await play(true);
    expect(tiers[0]).toBe('MISS');
    const rest = tiers.slice(1);
    expect(rest.filter((t) => t !== 'HIT-MEM' && t !== 'HIT-DISK')).toEqual([]);
    // What the docs quote (docs/operations.md, "Prefetch (CMCD nor/nrr)").
    console.log(`prefetch, 2 workers, a new connection per request: ${rest.filter((t) => t === 'HIT-MEM').length} HIT-MEM, ${rest.filter((t) => t === 'HIT-DISK').length} HIT-DISK of ${rest.length}`);
  });
});
