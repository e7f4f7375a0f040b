import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Cmcd, cmcdHeaders } from '../../src/common/cmcd.js';
import { TEST_ADMIN_TOKEN, randomTitle, tempDir, testCluster, writeMedia } from '../helpers/cluster.js';
import { type RunningEdge, startEdge } from '../helpers/edge-harness.js';
import { TestOrigin } from '../helpers/test-origin.js';

/**
 * CMCD-driven prefetch on a real edge in front of a real origin (loopback): a player that names
 * its next object (`nor`) or range (`nrr`) finds it in memory when it asks, the origin is asked
 * once per slice, and a prefetch never reaches outside the title, never runs for a player with a
 * comfortable buffer, on a busy node or over the budget, and never counts as a client's MISS.
 */
const S = 64 * 1024;

type Hints = Partial<Omit<Cmcd, 'keys'>>;

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A counter's value on the edge's registry, by its labels (0 when absent). */
async function counter(e: RunningEdge, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = e.server.metrics.registry.getSingleMetric(name);
  if (!m) return 0;
  const got = await m.get();
  return got.values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((n, v) => n + v.value, 0);
}

const prefetches = (e: RunningEdge, outcome: string) => counter(e, 'reelcdn_edge_prefetch_total', { outcome });

interface Hold {
  matches: (path: string, range: string | undefined) => boolean;
  /** 'request': nothing goes to the origin until released; 'body': the answer's head goes out, its body waits. */
  what: 'request' | 'body';
  open: Promise<void>;
}

/**
 * A real HTTP hop between the edge and the test origin that holds chosen requests until the test
 * lets them go — an origin as slow as a test needs, without a delay that a busy machine can
 * outlast. Every request is recorded as it arrives (`seen`), before any hold.
 */
class GatedFront {
  readonly seen: { path: string; range: string | undefined }[] = [];
  private readonly holds: Hold[] = [];
  private readonly releases: (() => void)[] = [];
  private readonly agent = new Agent({ connections: 256 });
  private readonly server: Server = createServer((req, res) => void this.pass(req, res).catch(() => res.destroy()));
  url = '';

  constructor(private readonly target: () => string) {}

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Holds what `matches` until the returned function is called (afterEach releases all). */
  hold(matches: Hold['matches'], what: Hold['what'] = 'request'): () => void {
    let release!: () => void;
    const open = new Promise<void>((r) => (release = r));
    this.holds.push({ matches, what, open });
    this.releases.push(release);
    return release;
  }

  countFor(path: string): number {
    return this.seen.filter((r) => r.path === path).length;
  }

  reset(): void {
    for (const r of this.releases) r();
    this.releases.length = 0;
    this.holds.length = 0;
    this.seen.length = 0;
  }

  async close(): Promise<void> {
    this.reset();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
    await this.agent.close();
  }

  private async pass(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    const range = req.headers.range;
    this.seen.push({ path, range });
    const hold = this.holds.find((h) => h.matches(path, range));
    if (hold?.what === 'request') await hold.open;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection') headers[k] = v;
    const up = await request(`${this.target()}${url}`, { method: 'GET', headers, dispatcher: this.agent });
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(up.headers)) if (typeof v === 'string' && k !== 'connection' && k !== 'keep-alive' && k !== 'transfer-encoding') out[k] = v;
    res.writeHead(up.statusCode, out);
    res.flushHeaders();
    if (hold?.what === 'body') await hold.open;
    for await (const chunk of up.body) if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
    res.end();
  }
}

describe('edge prefetch (CMCD nor/nrr)', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  const front = new GatedFront(() => origin.url);
  let edge: RunningEdge;
  let title: string;
  let seg2: Buffer;

  async function startWith(prefetch: Record<string, unknown> = {}, hitPath = true): Promise<RunningEdge> {
    return startEdge(testCluster({ sliceBytes: S, prefetch }), origin.url, { hitPath });
  }

  /** An edge whose upstream is the gated front (its timeouts long enough for a held request to wait). */
  async function startGated(prefetch: Record<string, unknown> = {}, edgeOverrides: Record<string, unknown> = {}): Promise<RunningEdge> {
    return startEdge(testCluster({ sliceBytes: S, prefetch, ...edgeOverrides }), front.url, { upstreamTimeouts: { connectMs: 2_000, headersMs: 60_000, bodyMs: 60_000 } });
  }

  /** Whether a recorded range starts at or after `from`. */
  const from = (start: number) => (range: string | undefined) => range !== undefined && Number(/^bytes=(\d+)-/.exec(range)?.[1] ?? -1) >= start;

  /** A fresh title: v/seg1.m4s (one slice and a bit), v/seg2.m4s (three slices), v/seg3.m4s, all.mp4 (five slices). */
  function newTitle(): void {
    title = randomTitle();
    writeMedia(root, title, 'v/seg1.m4s', S + 1000, 1);
    seg2 = writeMedia(root, title, 'v/seg2.m4s', 2 * S + 5000, 2);
    writeMedia(root, title, 'v/seg3.m4s', S, 3);
    writeMedia(root, title, 'all.mp4', 5 * S, 4);
    // What a refused nor would have reached through an encoded dot or slash, or a backslash.
    writeMedia(root, title, 'seg2.m4s', S, 5);
  }

  const path = (file: string) => `/o/${title}/${file}`;
  const get = (file: string, cmcd?: Hints, headers: Record<string, string> = {}) => edge.get(title, file, { ...(cmcd ? cmcdHeaders(cmcd) : {}), ...headers });

  /**
   * Lets a prefetch the last answer asked for run (it starts on a later turn of the loop), then
   * waits for the cache's fetches and disk writes. Tests wait for a prefetch's outcome first.
   */
  async function settle(): Promise<void> {
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    await edge.idle();
  }

  beforeAll(async () => {
    await origin.start();
    await front.start();
  });
  afterAll(async () => {
    await front.close();
    await origin.close();
  });
  afterEach(async () => {
    front.reset();
    origin.reset();
    await edge?.close();
  });

  it('itFetchesTheNextSegmentNamedByNorSoItsFirstRequestIsHitMem', async () => {
    newTitle();
    edge = await startWith();
    const a = await get('v/seg1.m4s', { nor: 'seg2.m4s', bl: 4000, ot: 'v' });
    expect(a.status).toBe(200);
    expect(a.headers['x-cache']).toBe('MISS');
    await until(async () => (await prefetches(edge, 'done')) === 1, 'the prefetch to finish');
    await settle();
    // One upstream fetch per slice of the next segment.
    expect(origin.countFor(path('v/seg2.m4s'))).toBe(3);

    const b = await get('v/seg2.m4s');
    expect(b.status).toBe(200);
    expect(b.headers['x-cache']).toBe('HIT-MEM');
    expect(b.body.equals(seg2)).toBe(true);
    expect(origin.countFor(path('v/seg2.m4s'))).toBe(3);

    expect(await prefetches(edge, 'started')).toBe(1);
    expect(await counter(edge, 'reelcdn_edge_prefetch_bytes_total')).toBe(seg2.length);
    // Counted once for the answer, though it read three prefetched slices; a second read is a plain hit.
    expect(await counter(edge, 'reelcdn_edge_prefetch_hits_total')).toBe(1);
    expect((await get('v/seg2.m4s')).headers['x-cache']).toBe('HIT-MEM');
    expect(await counter(edge, 'reelcdn_edge_prefetch_hits_total')).toBe(1);
    // The prefetch answered no client: one MISS (seg1), and the two answers of seg2 are HIT-MEM.
    expect(await counter(edge, 'reelcdn_edge_requests_total', { tier: 'MISS' })).toBe(1);
    expect(await counter(edge, 'reelcdn_edge_requests_total', { tier: 'HIT-MEM' })).toBe(2);
  });

  it('itPrefetchesFromTheObjectRoutesToo (no hit path in front)', async () => {
    newTitle();
    edge = await startWith({}, false);
    await get('v/seg1.m4s', { nor: 'seg2.m4s' });
    await until(async () => (await prefetches(edge, 'done')) === 1, 'the prefetch to finish');
    await settle();
    const b = await get('v/seg2.m4s');
    expect(b.headers['x-cache']).toBe('HIT-MEM');
    expect(b.body.equals(seg2)).toBe(true);
    expect(origin.countFor(path('v/seg2.m4s'))).toBe(3);
    expect(await counter(edge, 'reelcdn_edge_prefetch_hits_total')).toBe(1);
    expect(await counter(edge, 'reelcdn_edge_requests_total', { tier: 'MISS' })).toBe(1);
  });

  it('itStopsAPrefetchWhoseObjectChangesUpstreamAndServesTheNewVersionWhole', async () => {
    newTitle();
    edge = await startWith();
    origin.behaviour.set(path('v/seg2.m4s'), { delayMs: 150 });
    await get('v/seg1.m4s', { nor: 'seg2.m4s' });
    // Slice 1 asked for (slice 0 is in): the object changes before slice 2 is.
    await until(() => origin.countFor(path('v/seg2.m4s')) === 2, 'the second slice to be asked for');
    origin.behaviour.set(path('v/seg2.m4s'), { etag: '"v2"' });
    await until(async () => (await prefetches(edge, 'failed')) === 1, 'the prefetch to stop');
    await settle();
    const b = await get('v/seg2.m4s');
    expect(b.status).toBe(200);
    expect(b.headers.etag).toBe('"v2"');
    expect(b.body.equals(seg2)).toBe(true);
    // Slices of the old version were not kept for the new one: the answer read none of them.
    expect(b.headers['x-cache']).not.toBe('HIT-MEM');
  });

  it('itStoresAPrefetchedSegmentOnDiskAsAMissWould', async () => {
    newTitle();
    edge = await startWith();
    await get('v/seg1.m4s', { nor: 'seg2.m4s' });
    await until(async () => (await prefetches(edge, 'done')) === 1, 'the prefetch to finish');
    await settle();
    const meta = edge.server.cache.peek(title, 'v/seg2.m4s')!;
    expect(meta).toBeDefined();
    for (let i = 0; i < 3; i++) expect(edge.server.disk.has(meta.key, i, meta)).toBe(true);
  });

  it("itFollowsHlsJsNor: '..' up to /c/ and down through the title, with the next segment's signed query", async () => {
    newTitle();
    edge = await startWith();
    await get('v/seg1.m4s', { nor: `../../${title}/v/seg2.m4s?e=1&k=k1&t=abc`, ot: 'v' });
    await until(async () => (await prefetches(edge, 'done')) === 1, 'the prefetch to finish');
    await settle();
    expect(origin.countFor(path('v/seg2.m4s'))).toBe(3);
    expect((await get('v/seg2.m4s')).headers['x-cache']).toBe('HIT-MEM');
  });

  it('itFetchesTheRangeNamedByNrrOfTheCurrentObject', async () => {
    newTitle();
    edge = await startWith();
    const a = await get('all.mp4', { nrr: `${S}-${3 * S - 1}` }, { range: `bytes=0-${S - 1}` });
    expect(a.status).toBe(206);
    await until(async () => (await prefetches(edge, 'done')) === 1, 'the prefetch to finish');
    await settle();
    // Slice 0 for the answer, slices 1 and 2 for the prefetch; nothing past the range.
    expect(origin.countFor(path('all.mp4'))).toBe(3);
    const b = await get('all.mp4', undefined, { range: `bytes=${S}-${3 * S - 1}` });
    expect(b.status).toBe(206);
    expect(b.headers['x-cache']).toBe('HIT-MEM');
    expect(await counter(edge, 'reelcdn_edge_prefetch_bytes_total')).toBe(2 * S);
    expect(origin.countFor(path('all.mp4'))).toBe(3);
  });

  it('itFetchesTheRangeNamedByNrrOfTheObjectNamedByNor', async () => {
    newTitle();
    edge = await startWith();
    await get('v/seg1.m4s', { nor: 'seg2.m4s', nrr: `0-${S - 1}` });
    await until(async () => (await prefetches(edge, 'done')) === 1, 'the prefetch to finish');
    await settle();
    expect(origin.countFor(path('v/seg2.m4s'))).toBe(1);
    const b = await get('v/seg2.m4s', undefined, { range: `bytes=0-${S - 1}` });
    expect(b.headers['x-cache']).toBe('HIT-MEM');
    expect(b.body.equals(seg2.subarray(0, S))).toBe(true);
  });

  it.each([
    ['another title', '/c/other-title/v/seg2.m4s'],
    ['an absolute path outside /c/{title}/', '/o/TITLE/v/seg2.m4s'],
    ['another host', 'http://127.0.0.1:1/c/TITLE/v/seg2.m4s'],
    ['this host by absolute URL', 'EDGE/c/TITLE/v/seg2.m4s'],
    ['a protocol-relative URL', '//127.0.0.1/c/TITLE/v/seg2.m4s'],
    ['dot-dot segments out of the title', '../../other-title/v/seg2.m4s'],
    ['dot-dot segments above the root', '../../../../o/TITLE/v/seg2.m4s'],
    ['an encoded dot-dot', '%2e%2e/seg2.m4s'],
    ['an encoded slash', '..%2Fseg2.m4s'],
    ['a backslash', '..\\seg2.m4s'],
  ])('itNeverFollowsNorTo %s', async (_what, nor) => {
    newTitle();
    edge = await startWith();
    writeMedia(root, 'other-title', 'v/seg2.m4s', S, 6);
    const a = await get('v/seg1.m4s', { nor: nor.replace('TITLE', title).replace('EDGE', edge.url) });
    expect(a.status).toBe(200);
    await until(async () => (await prefetches(edge, 'refused')) === 1, 'the refusal');
    await settle();
    expect(await prefetches(edge, 'started')).toBe(0);
    // The origin saw the answer's own fetches and nothing else.
    expect(origin.requests.map((r) => r.path)).toEqual([path('v/seg1.m4s'), path('v/seg1.m4s')]);
  });

  it('itSkipsAPlayerWithAComfortableBuffer', async () => {
    newTitle();
    edge = await startWith({ maxBufferMs: 20_000 });
    await get('v/seg1.m4s', { nor: 'seg2.m4s', bl: 20_000 });
    await get('v/seg1.m4s', { nor: 'seg3.m4s', bl: 45_000 });
    await settle();
    expect(await prefetches(edge, 'skipped_buffer')).toBe(2);
    expect(await prefetches(edge, 'started')).toBe(0);
    expect(origin.countFor(path('v/seg2.m4s')) + origin.countFor(path('v/seg3.m4s'))).toBe(0);
    // Under the threshold (CMCD rounds bl to 100 ms): prefetched.
    await get('v/seg1.m4s', { nor: 'seg2.m4s', bl: 19_900 });
    await until(async () => (await prefetches(edge, 'done')) === 1, 'the prefetch');
  });

  it('itSkipsOverTheConcurrencyBudgetAndCountsIt', async () => {
    newTitle();
    edge = await startGated({ maxConcurrent: 1 });
    const release = front.hold((p) => p === path('v/seg2.m4s'));
    await get('v/seg1.m4s', { nor: 'seg2.m4s' });
    await until(() => front.countFor(path('v/seg2.m4s')) === 1, 'the first prefetch to be on its way');
    // The first prefetch is running (the front holds it until released): the next one does not start.
    await get('v/seg1.m4s', { nor: 'seg3.m4s' });
    expect(await prefetches(edge, 'skipped_budget')).toBe(1);
    release();
    await until(async () => (await prefetches(edge, 'done')) === 1, 'the first prefetch');
    await settle();
    expect(front.countFor(path('v/seg3.m4s'))).toBe(0);
    expect(edge.server.cache.peek(title, 'v/seg3.m4s')).toBeUndefined();
  });

  it('itCutsAPrefetchToTheBytesBudget', async () => {
    newTitle();
    edge = await startWith({ maxBytesInFlight: 2 * S });
    // An absolute path inside the title is taken as a relative one.
    await get('v/seg1.m4s', { nor: `/c/${title}/all.mp4` });
    await until(async () => (await prefetches(edge, 'done')) === 1, 'the prefetch');
    await settle();
    // Five slices wanted, two fit.
    expect(origin.countFor(path('all.mp4'))).toBe(2);
    expect(await counter(edge, 'reelcdn_edge_prefetch_bytes_total')).toBe(2 * S);
  });

  it('itSkipsWhileTheNodeIsDrained', async () => {
    newTitle();
    edge = await startWith();
    const admin = (p: string) => request(`${edge.adminUrl}${p}`, { method: 'POST', headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } }).then((r) => r.body.text());
    await admin('/drain');
    await get('v/seg1.m4s', { nor: 'seg2.m4s' });
    await settle();
    expect(await prefetches(edge, 'skipped_overload')).toBe(1);
    expect(origin.countFor(path('v/seg2.m4s'))).toBe(0);
    await admin('/undrain');
    await get('v/seg1.m4s', { nor: 'seg2.m4s' });
    await until(async () => (await prefetches(edge, 'done')) === 1, 'the prefetch after undrain');
  });

  it('itSkipsWhileTheNodeIsOverloaded', async () => {
    newTitle();
    // Overloaded as steering's threshold says: more open connections than maxConnections (1).
    edge = await startEdge(testCluster({ sliceBytes: S }, { steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', thresholds: { maxConnections: 1 } } }), origin.url);
    const { port } = new URL(edge.url);
    const idle = connect(Number(port), '127.0.0.1');
    await new Promise<void>((resolve) => idle.once('connect', () => resolve()));
    try {
      await until(async () => JSON.parse(await (await request(`${edge.adminUrl}/health`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })).body.text()).connections >= 1, 'the idle connection to count');
      await get('v/seg1.m4s', { nor: 'seg2.m4s' });
      await settle();
      expect(await prefetches(edge, 'skipped_overload')).toBe(1);
      expect(origin.countFor(path('v/seg2.m4s'))).toBe(0);
    } finally {
      idle.destroy();
    }
  });

  it('itLetsAClientRequestJoinARunningPrefetch', async () => {
    newTitle();
    edge = await startGated();
    const release = front.hold((p) => p === path('v/seg2.m4s'));
    await get('v/seg1.m4s', { nor: 'seg2.m4s' });
    await until(() => front.countFor(path('v/seg2.m4s')) === 1, 'the prefetch to be on its way');
    // Its first slice, while the front still holds it: the client joins the prefetch's fetch.
    const asked = get('v/seg2.m4s', undefined, { range: `bytes=0-${S - 1}` });
    await until(async () => (await counter(edge, 'reelcdn_edge_coalesced_waits_total')) === 1, 'the client to join the prefetch');
    release();
    const b = await asked;
    expect(b.status).toBe(206);
    expect(b.body.equals(seg2.subarray(0, S))).toBe(true);
    expect(b.headers['x-cache']).toBe('HIT-FILL');
    await until(async () => (await prefetches(edge, 'done')) === 1, 'the prefetch to finish');
    await settle();
    // Whoever started each slice, it was fetched once.
    expect(front.countFor(path('v/seg2.m4s'))).toBe(3);
    expect(await counter(edge, 'reelcdn_edge_prefetch_hits_total')).toBe(1);
    expect(await counter(edge, 'reelcdn_edge_requests_total', { tier: 'MISS' })).toBe(1);
  });

  it('itLeavesNoTraceOfAFailedPrefetchOnALaterClientRequest', async () => {
    newTitle();
    edge = await startWith();
    origin.behaviour.set(path('v/seg2.m4s'), { status: 503 });
    await get('v/seg1.m4s', { nor: 'seg2.m4s' });
    await until(async () => (await prefetches(edge, 'failed')) === 1, 'the prefetch to fail');
    await settle();
    origin.behaviour.delete(path('v/seg2.m4s'));
    const b = await get('v/seg2.m4s');
    expect(b.status).toBe(200);
    expect(b.headers['x-cache']).toBe('MISS');
    expect(b.body.equals(seg2)).toBe(true);

    // Cut mid-slice: the same.
    origin.behaviour.set(path('v/seg3.m4s'), { truncateAfter: 1000 });
    await get('v/seg1.m4s', { nor: 'seg3.m4s' });
    await until(async () => (await prefetches(edge, 'failed')) === 2, 'the second prefetch to fail');
    await settle();
    origin.behaviour.delete(path('v/seg3.m4s'));
    const c = await get('v/seg3.m4s');
    expect(c.status).toBe(200);
    expect(c.headers['x-cache']).toBe('MISS');
    expect(await counter(edge, 'reelcdn_edge_prefetch_hits_total')).toBe(0);
  });

  it('itStopsAtAnObjectTheCacheMayNotKeep (no-store: only the slice that said so is fetched)', async () => {
    newTitle();
    edge = await startWith();
    origin.behaviour.set(path('v/seg2.m4s'), { cacheControl: 'no-store' });
    await get('v/seg1.m4s', { nor: 'seg2.m4s' });
    await until(async () => (await prefetches(edge, 'refused')) === 1, 'the prefetch to stop');
    await settle();
    expect(origin.countFor(path('v/seg2.m4s'))).toBe(1);
    expect((await get('v/seg2.m4s')).headers['x-cache']).toBe('MISS');
  });

  it('itDoesNothingWhenDisabled', async () => {
    newTitle();
    edge = await startWith({ enabled: false });
    await get('v/seg1.m4s', { nor: 'seg2.m4s' });
    await settle();
    expect(await prefetches(edge, 'started')).toBe(0);
    expect(origin.countFor(path('v/seg2.m4s'))).toBe(0);
  });

  it('itCountsAPrefetchOfAnObjectAlreadyCachedAsCached', async () => {
    newTitle();
    edge = await startWith();
    await get('v/seg2.m4s');
    await settle();
    await get('v/seg1.m4s', { nor: 'seg2.m4s' });
    // Decided at once, without starting anything.
    expect(await prefetches(edge, 'cached')).toBe(1);
    expect(await prefetches(edge, 'started')).toBe(0);
    // Even for a player whose buffer is comfortable: there is nothing to bring, whatever it needs.
    await get('v/seg1.m4s', { nor: 'seg2.m4s', bl: 60_000 });
    expect(await prefetches(edge, 'cached')).toBe(2);
    expect(origin.countFor(path('v/seg2.m4s'))).toBe(3);
    expect(await counter(edge, 'reelcdn_edge_prefetch_bytes_total')).toBe(0);
  });

  it('itNeverStartsForAHead (review P2-5)', async () => {
    newTitle();
    edge = await startWith();
    const a = await edge.get(title, 'v/seg1.m4s', cmcdHeaders({ nor: '../all.mp4' }), 'HEAD');
    expect(a.status).toBe(200);
    await until(async () => (await prefetches(edge, 'refused')) === 1, 'the refusal');
    await settle();
    expect(await prefetches(edge, 'started')).toBe(0);
    expect(origin.countFor(path('all.mp4'))).toBe(0);
  });

  it.each([
    ['the hit path', true],
    ['the object routes', false],
  ])('itBringsAtMostFourTimesTheAnswerUnderWay, at least one slice, from %s (review P2-5)', async (_what, hitPath) => {
    newTitle();
    edge = await startWith({}, hitPath);
    // A one-byte answer naming a five-slice object: one slice, not the budget's worth.
    const first = await get('v/seg1.m4s', { nor: '../all.mp4' }, { range: 'bytes=0-0' });
    expect(first.status, first.body.toString()).toBe(206);
    await until(async () => (await prefetches(edge, 'done')) === 1, 'the first prefetch');
    await settle();
    expect(origin.countFor(path('all.mp4'))).toBe(1);
    expect(await counter(edge, 'reelcdn_edge_prefetch_bytes_total')).toBe(S);
    // Half a slice answered, next object named by nrr: two slices (four times half a slice).
    const second = await get('v/seg1.m4s', { nor: '../all.mp4', nrr: `${S}-` }, { range: `bytes=0-${S / 2 - 1}` });
    expect(second.status, second.body.toString()).toBe(206);
    await until(async () => (await prefetches(edge, 'done')) === 2, 'the second prefetch');
    await settle();
    expect(origin.countFor(path('all.mp4'))).toBe(3);
    expect(await counter(edge, 'reelcdn_edge_prefetch_bytes_total')).toBe(3 * S);
  });

  it('itKeepsTheSliceResolveStartedInTheBudgetUntilItSettles (review P2-6)', async () => {
    newTitle();
    edge = await startGated({ maxBytesInFlight: 3 * S });
    // A: seg2 (2 slices and a bit), its first slice in, the rest held at the front.
    const releaseA = front.hold((p, r) => p === path('v/seg2.m4s') && from(S)(r));
    await get('v/seg1.m4s', { nor: 'seg2.m4s' });
    await until(() => front.seen.some((r) => r.path === path('v/seg2.m4s') && from(S)(r.range)), 'A to wait for its second slice');
    // B: all.mp4 — learning it starts its first slice (its head comes, its body is held); its three
    // wanted slices do not fit beside A's: skipped, yet that first slice is still coming.
    const releaseB = front.hold((p) => p === path('all.mp4'), 'body');
    await get('v/seg1.m4s', { nor: '../all.mp4' });
    await until(async () => (await prefetches(edge, 'skipped_budget')) === 1, 'B to be skipped');
    // C: seg3, one slice. A's S+5000 bytes and B's slice in flight leave less than a slice: C must not start.
    await get('v/seg1.m4s', { nor: 'seg3.m4s' });
    expect(await prefetches(edge, 'skipped_budget')).toBe(2);
    expect(await prefetches(edge, 'started')).toBe(2);
    expect(front.countFor(path('v/seg3.m4s'))).toBe(0);
    // Outcomes are exclusive but for `started`: three asks, three end outcomes once A and B end.
    releaseA();
    releaseB();
    await until(async () => (await prefetches(edge, 'done')) === 1, 'A to finish');
    await settle();
    const ends = await Promise.all(['done', 'cached', 'failed', 'refused', 'skipped_buffer', 'skipped_overload', 'skipped_budget'].map((o) => prefetches(edge, o)));
    expect(ends.reduce((n, v) => n + v, 0)).toBe(3);
    // B's slice was brought and kept, though B was skipped.
    expect((await get('all.mp4', undefined, { range: `bytes=0-${S - 1}` })).headers['x-cache']).toBe('HIT-MEM');
  });

  it("itNeverQueuesAClientMissBehindPrefetches: prefetches use a quarter of the upstream pool, a client's miss goes past them (review P2-4)", async () => {
    newTitle();
    edge = await startGated({ maxConcurrent: 64 });
    // More prefetches than the upstream pool has connections (32), against an origin that holds them all.
    const N = 36;
    for (let i = 0; i < N; i++) writeMedia(root, title, `p/${i}.m4s`, S, 100 + i);
    const last = path(`p/${N - 1}.m4s`);
    const releasePrefetches = front.hold((p) => p.startsWith(path('p/')) && p !== last);
    for (let i = 0; i < N; i++) expect((await get('v/seg1.m4s', { nor: `../p/${i}.m4s` })).status).toBe(200);
    await until(async () => (await prefetches(edge, 'started')) === N, 'every prefetch to start');
    const prefetchesSeen = () => front.seen.filter((r) => r.path.startsWith(path('p/'))).length;
    await until(() => prefetchesSeen() >= 8, 'the first prefetches to reach the origin');

    // A client's miss reaches the origin while every prefetch there is held, ahead of the prefetches
    // still waiting at the edge (without the lane it would wait for a connection behind them).
    const miss = get('v/seg3.m4s');
    await until(() => front.countFor(path('v/seg3.m4s')) === 1, "the client's miss to reach the origin", 10_000);
    expect(prefetchesSeen()).toBe(8);
    const a = await miss;
    expect(a.status).toBe(200);
    expect(a.headers['x-cache']).toBe('MISS');
    // A client asking for a slice a waiting prefetch would fetch joins it, and that fetch goes out at once.
    const joined = await get(`p/${N - 1}.m4s`);
    expect(joined.status).toBe(200);
    expect(joined.headers['x-cache']).not.toBe('MISS');
    expect(prefetchesSeen()).toBe(9);

    releasePrefetches();
    await until(async () => (await prefetches(edge, 'done')) === N, 'every prefetch to finish', 20_000);
    expect(prefetchesSeen()).toBe(N);
  });

  it('itCountsPrefetchedBytesLetGoUnread (review P3-10)', async () => {
    newTitle();
    edge = await startWith();
    await get('v/seg1.m4s', { nor: 'seg2.m4s' });
    await until(async () => (await prefetches(edge, 'done')) === 1, 'the prefetch');
    await settle();
    expect(await counter(edge, 'reelcdn_edge_prefetch_wasted_bytes_total')).toBe(0);
    // Read, then purged: used, not wasted.
    await get('v/seg1.m4s', { nor: 'seg3.m4s' });
    await until(async () => (await prefetches(edge, 'done')) === 2, 'the second prefetch');
    await settle();
    expect((await get('v/seg3.m4s')).headers['x-cache']).toBe('HIT-MEM');
    await purge(title);
    expect(await counter(edge, 'reelcdn_edge_prefetch_wasted_bytes_total')).toBe(seg2.length);
  });

  it('itCountsPrefetchedSlicesEvictedUnread (review P3-10)', async () => {
    newTitle();
    // Room for three slices: seg2's (two and a bit) then all.mp4's first two evict seg2's oldest.
    edge = await startEdge(testCluster({ sliceBytes: S, memoryBytes: 3 * S }), origin.url);
    await get('v/seg1.m4s', { nor: 'seg2.m4s' });
    await until(async () => (await prefetches(edge, 'done')) === 1, 'the prefetch of seg2');
    await settle();
    await get('v/seg1.m4s', { nor: '../all.mp4', nrr: `0-${2 * S - 1}` });
    await until(async () => (await prefetches(edge, 'done')) === 2, 'the prefetch of all.mp4');
    await settle();
    const wasted = await counter(edge, 'reelcdn_edge_prefetch_wasted_bytes_total');
    expect(wasted).toBeGreaterThanOrEqual(S);
    expect(wasted).toBeLessThanOrEqual(seg2.length);
  });

  async function purge(t: string): Promise<void> {
    const res = await request(`${edge.adminUrl}/purge`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ title: t }),
    });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  }
});
