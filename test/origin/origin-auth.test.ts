import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterConfig, validateCluster } from '../../src/common/config.js';
import { signQuery } from '../../src/common/signing.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { type OriginServer, createOriginServer } from '../../src/origin/server.js';
import { TEST_ADMIN_TOKEN } from '../helpers/cluster.js';
import { startEdge } from '../helpers/edge-harness.js';
import { deadPort, metricValue } from '../helpers/http-tools.js';
import { FIXTURES, ORIGIN_ADMIN_TOKEN, originTestConfig } from '../helpers/origin-harness.js';
import { rawRequest, signedForOrigin } from '../helpers/origin-http.js';
import { createEdgeServer } from '../../src/edge/server.js';

const KEYS = { old: 'old-secret-0123456789abcdef', new: 'new-secret-0123456789abcdef' };
const FILE = 'stream_360p.mp4';
const PATH = `/o/movie/${FILE}`;
const source = readFileSync(join(FIXTURES, 'hls-bytes', FILE));

/** originTestConfig with two keys, `new` active and `old` still listed (a rotation under way). */
function rotatingConfig(required = true): ClusterConfig {
  const c = originTestConfig();
  return { ...c, signing: { ...c.signing, keys: KEYS, activeKey: 'new', required } };
}

interface Running {
  server: OriginServer;
  url: string;
  registry: Registry;
  logs: Record<string, unknown>[];
  rawLog: string[];
}

async function startOrigin(config: ClusterConfig): Promise<Running> {
  const logs: Record<string, unknown>[] = [];
  const rawLog: string[] = [];
  const registry = new Registry();
  const server = createOriginServer({
    config,
    logger: pino({ level: 'info' }, { write: (line: string) => void (rawLog.push(line), logs.push(JSON.parse(line))) }),
    registry,
    adminToken: ORIGIN_ADMIN_TOKEN,
    catalogPollMs: 0,
    listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
  });
  const { publicUrl } = await server.start();
  return { server, url: publicUrl, registry, logs, rawLog };
}

let config: ClusterConfig;
let origin: Running;
const get = (path: string, opts: { method?: string; headers?: Record<string, string> } = {}) => rawRequest(origin.url, path, opts);
const refused = async (reason: string) => metricValue(await origin.registry.metrics(), 'reelcdn_origin_refused_total', { reason });

beforeAll(async () => {
  config = rotatingConfig();
  await ingestTitle(config, 'movie', join(FIXTURES, 'hls-bytes'));
  origin = await startOrigin(config);
});
afterAll(async () => {
  await origin?.server.close();
});

describe('the origin serves edges only', () => {
  it('refusesAnUnsignedRequestWith403AndAOneLineReason', async () => {
    // Before issue 10 this was a 200 with the whole file, to anyone who found the origin.
    const r = await get(PATH);
    expect(r.status).toBe(403);
    expect(r.headers['content-type']).toMatch(/^text\/plain/);
    expect(r.body.toString()).toBe('forbidden: missing token\n');
  });

  it('refusesUnsignedHEADAndRangesAlike', async () => {
    expect((await get(PATH, { method: 'HEAD' })).status).toBe(403);
    const ranged = await get(PATH, { headers: { range: 'bytes=0-99' } });
    expect([ranged.status, ranged.body.toString()]).toEqual([403, 'forbidden: missing token\n']);
  });

  it('tellsAStrangerNothingOfWhatExists: a file not in the catalog is 403 too, not 404', async () => {
    expect((await get('/o/nosuch/master.m3u8')).status).toBe(403);
    expect((await get('/o/movie/../../etc/passwd')).status).toBe(403);
  });

  it.each<[string, () => string, string]>([
    ['a forged signature', () => `${PATH}?e=${Math.floor(Date.now() / 1000) + 60}&k=new&t=${'A'.repeat(43)}`, 'bad signature'],
    ['an expired token', () => signedForOrigin(config.signing, PATH, { nowSec: Date.now() / 1000 - 600, ttlSeconds: 300 }), 'expired'],
    ['a token for another path', () => `${PATH}?${signQuery(KEYS, 'new', '/o/movie/master.m3u8', Date.now() / 1000, 300)}`, 'bad signature'],
    ["an edge's player token (/c/, not /o/)", () => `${PATH}?${signQuery(KEYS, 'new', `/c/movie/${FILE}`, Date.now() / 1000, 300)}`, 'bad signature'],
    ['a key the cluster does not list', () => `${PATH}?${signQuery({ gone: 'gone-secret-0123456789abcd' }, 'gone', PATH, Date.now() / 1000, 300)}`, 'unknown key'],
  ])('refuses %s with 403', async (_name, path, reason) => {
    const r = await get(path());
    expect([r.status, r.body.toString()]).toEqual([403, `forbidden: ${reason}\n`]);
  });

  it('servesASignedRequestWithTheRightBytes', async () => {
    const r = await get(signedForOrigin(config.signing, PATH));
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe(String(source.length));
    expect(r.body.equals(source)).toBe(true);
  });

  it('servesARangeOverASignedRequest', async () => {
    const r = await get(signedForOrigin(config.signing, PATH), { headers: { range: 'bytes=1000-1999' } });
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes 1000-1999/${source.length}`);
    expect(r.body.equals(source.subarray(1000, 2000))).toBe(true);
  });

  it('servesSignedHEADAndConditionals', async () => {
    const head = await get(signedForOrigin(config.signing, PATH), { method: 'HEAD' });
    expect([head.status, head.headers['content-length'], head.body.length]).toEqual([200, String(source.length), 0]);
    const notModified = await get(signedForOrigin(config.signing, PATH), { headers: { 'if-none-match': String(head.headers.etag) } });
    expect(notModified.status).toBe(304);
    const unsatisfiable = await get(signedForOrigin(config.signing, PATH), { headers: { range: `bytes=${source.length}-` } });
    expect(unsatisfiable.status).toBe(416);
    // Signed, the catalog speaks: a file it does not list is 404.
    expect((await get(signedForOrigin(config.signing, '/o/nosuch/master.m3u8'))).status).toBe(404);
  });

  it('acceptsAListedKeyThatIsNoLongerActive (rotation: edges not yet reloaded still read)', async () => {
    const r = await get(signedForOrigin(config.signing, PATH, { keyId: 'old' }));
    expect(r.status).toBe(200);
    expect(r.body.equals(source)).toBe(true);
  });

  it('countsRefusalsByReasonAndLogsThemWithoutTheToken', async () => {
    const before = await refused('bad signature');
    const secretMac = 'Z'.repeat(43);
    await get(`${PATH}?e=${Math.floor(Date.now() / 1000) + 60}&k=new&t=${secretMac}`);
    expect(await refused('bad signature')).toBe(before + 1);
    expect(await refused('missing token')).toBeGreaterThanOrEqual(1);
    // Every reason has its series from the start, so a dashboard's rate() sees the first one.
    expect((await origin.registry.metrics()).match(/^reelcdn_origin_refused_total\{/gm)?.length).toBe(5);
    const line = origin.logs.filter((l) => l.msg === 'origin refused a request').at(-1);
    expect(line).toMatchObject({ path: PATH, reason: 'bad signature', level: 40 });
    expect(origin.rawLog.some((l) => l.includes(secretMac))).toBe(false);
    const stranger = origin.logs.find((l) => l.msg === 'origin refused a request' && l.reason === 'missing token');
    expect(stranger?.level).toBe(30);
  });

  it('letsAnEdgeStartedAgainstItServeMissThenHit (the edge signs its misses)', async () => {
    const edge = await startEdge(config, origin.url);
    try {
      const a = await edge.get('movie', FILE, { range: 'bytes=100-50000' });
      expect([a.status, a.headers['x-cache']]).toEqual([206, 'MISS']);
      expect(a.body.equals(source.subarray(100, 50001))).toBe(true);
      await edge.idle();
      const b = await edge.get('movie', FILE, { range: 'bytes=100-50000' });
      expect(b.status).toBe(206);
      expect(b.headers['x-cache']).toMatch(/^HIT/);
      expect(b.body.equals(source.subarray(100, 50001))).toBe(true);
    } finally {
      await edge.close();
    }
  });

  it('letsAChildEdgeWhoseParentIsDownFallBackToIt (the fallback is signed too)', async () => {
    const deadParent = `http://127.0.0.1:${await deadPort()}`;
    const edge = (id: string, url: string) => ({ id, isp: 'isp-a', url, adminUrl: 'http://127.0.0.1:1', dataDir: id, diskBytes: 1e8, memoryBytes: 1e7 });
    const family = validateCluster(
      {
        signing: { keys: KEYS, activeKey: 'new' },
        origin: { url: origin.url, adminUrl: 'http://127.0.0.1:1', dataDir: 'origin' },
        steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
        isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
        edges: [edge('parent', deadParent), { ...edge('child', 'http://127.0.0.1:1'), parent: 'parent' }],
        log: { level: 'silent' },
      },
      config.baseDir,
    );
    const child = createEdgeServer({
      config: family,
      edge: family.edges[1]!,
      adminToken: TEST_ADMIN_TOKEN,
      autoFill: false,
      upstreamTimeouts: { connectMs: 500, headersMs: 2000, bodyMs: 2000 },
      listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    });
    const { publicUrl } = await child.start();
    try {
      const path = `/c/movie/${FILE}`;
      const r = await rawRequest(publicUrl, `${path}?${signQuery(KEYS, 'new', path, Date.now() / 1000, 3600)}`);
      expect(r.status).toBe(200);
      expect(r.body.equals(source)).toBe(true);
    } finally {
      await child.close();
    }
  });
});

describe('signing.required: false (the lab switch)', () => {
  it('opensTheOriginAsItOpensTheEdges', async () => {
    const open = rotatingConfig(false);
    await ingestTitle(open, 'movie', join(FIXTURES, 'hls-bytes'));
    const o = await startOrigin(open);
    try {
      const r = await rawRequest(o.url, PATH);
      expect(r.status).toBe(200);
      expect(r.body.equals(source)).toBe(true);
    } finally {
      await o.server.close();
    }
  });
});
