import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { type ClientHttp2Session, connect as h2connect } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Clock, systemClock } from '../../src/common/clock.js';
import type { ClusterConfig } from '../../src/common/config.js';
import { randomBase64url, randomHex } from '../../src/common/random-ids.js';
import { type LocatePathOptions, createLocatePath } from '../../src/steering/locate-path.js';
import { type SteeringServer, createSteeringServer } from '../../src/steering/server.js';
import { makeTestPki } from '../helpers/certs.js';
import { tempDir } from '../helpers/cluster.js';
import { type SteeringWorld, TOKEN, silent, steeringWorld } from '../steering-harness.js';

/**
 * The raw /v1/locate path answers exactly as the fastify route does: two steering servers on
 * one origin and the same edges, one with the front path and one without (the reference), get
 * the same requests; status, headers and body must be equal. Tokens depend on the second, so
 * both read one frozen wall clock; span ids are random, so they are compared as a shape.
 */
interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Headers that differ between any two answers by time. */
const VOLATILE = new Set(['date']);
/**
 * A traceparent is new for every answer: its span id always, its trace id unless the caller
 * sent one (the trace test checks that one is kept). Compared as a shape.
 */
const TRACEPARENT = /00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]/g;

function normalised(a: Answer): Answer {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(a.headers)) headers[k] = v.replace(TRACEPARENT, '<traceparent>');
  return { status: a.status, headers, body: a.body.replace(TRACEPARENT, '<traceparent>') };
}

/** A wall clock that stands still: servers sharing one sign the same tokens. */
function frozenClock(): Clock {
  const t = Date.now();
  return { ...systemClock, now: () => t };
}

/** A steering server, and the requests fastify routed on its public port (the ones a front path left to it). */
type Running = { server: SteeringServer; publicUrl: string; registry: Registry; routed: number };

/**
 * Two steering servers on one config and clock: `ref` answers /v1/locate through the framework
 * route alone, `front` through the front path. Every edge up and every holding read before the
 * first request. Both are pushed to `servers` to be closed.
 */
async function startRefAndFront(config: ClusterConfig, clock: Clock, servers: SteeringServer[]): Promise<{ ref: Running; front: Running }> {
  const start = async (locatePath: boolean): Promise<Running> => {
    const registry = new Registry();
    const server = createSteeringServer({
      config,
      logger: silent,
      registry,
      clock,
      adminToken: TOKEN,
      locatePath,
      healthTimeoutMs: 2000,
      listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    });
    servers.push(server);
    const counted: Running = { server, registry, publicUrl: '', routed: 0 };
    server.publicApp.addHook('onRequest', async () => {
      counted.routed++;
    });
    counted.publicUrl = (await server.start()).publicUrl;
    await server.health.pollOnce();
    await server.health.pollOnce();
    return counted;
  };
  return { ref: await start(false), front: await start(true) };
}

describe('steering locate path: answers equal to the route', () => {
  let world: SteeringWorld;
  let ref: Running;
  let front: Running;
  const servers: SteeringServer[] = [];

  beforeAll(async () => {
    world = await steeringWorld();
    world.edges[1]!.heldTitles = ['bbb-seg'];
    world.edges[3]!.heldTitles = ['bbb-seg', 'bbb-dash'];
    // The socket address (127.0.0.1) is a trusted proxy: X-Forwarded-For picks the ISP.
    const config = { ...world.config, steering: { ...world.config.steering, trustedProxies: ['127.0.0.1/32'] } };
    ({ ref, front } = await startRefAndFront(config, frozenClock(), servers));
  }, 30_000);
  afterAll(async () => {
    for (const server of servers) await server.close();
    await world?.close();
  });

  async function get(base: string, path: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<Answer> {
    const res = await request(`${base}${path}`, { method, headers });
    const body = await res.body.text();
    const flat: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined && !VOLATILE.has(k)) flat[k] = Array.isArray(v) ? v.join(', ') : v;
    return { status: res.statusCode, headers: flat, body };
  }

  /** The same request to both; returns the front path's answer, and whether it (not the route) answered. */
  async function same(path: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<{ answer: Answer; claimed: boolean }> {
    const want = await get(ref.publicUrl, path, headers, method);
    const routedBefore = front.routed;
    const got = await get(front.publicUrl, path, headers, method);
    expect(normalised(got)).toEqual(normalised(want));
    return { answer: got, claimed: front.routed === routedBefore };
  }

  it('itAnswersEveryFileOfEveryTitleAlike: 200s over three titles, holders and ISPs, claimed without the framework', async () => {
    const files: Record<string, string[]> = {
      'bbb-seg': ['init_180p.mp4', 'seg_180p_000.m4s', 'seg_180p_005.m4s', 'index_180p.m3u8'],
      'bbb-hls': ['master.m3u8'],
      'bbb-dash': ['manifest.mpd'],
    };
    for (const [title, list] of Object.entries(files)) {
      for (const file of list) {
        for (const xff of [undefined, '127.2.0.9', '10.9.9.9, 127.0.5.5', '10.9.9.9']) {
          const { answer, claimed } = await same(`/v1/locate/${title}/${file}`, xff ? { 'x-forwarded-for': xff } : {});
          expect(answer.status).toBe(200);
          expect(claimed).toBe(true);
          const body = JSON.parse(answer.body) as { title: string; file: string; isp: string | null; urls: { edge: string; url: string }[] };
          expect(body.title).toBe(title);
          expect(body.urls.length).toBe(4);
          // One trace per answer: the header's, in every URL.
          for (const u of body.urls) expect(u.url.endsWith(`&tp=${answer.headers.traceparent}`)).toBe(true);
          if (xff === '127.2.0.9') expect(body.isp).toBe('isp-b');
          if (xff === '10.9.9.9') expect(body.isp).toBe(null); // no prefix matches, no default ISP
        }
      }
    }
  });

  it('itKeepsTheCallersTraceAlike: traceparent header, tp query, a malformed one, a query it ignores', async () => {
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const h = await same('/v1/locate/bbb-seg/init_180p.mp4', { traceparent: tp });
    expect(h.claimed).toBe(true);
    expect(h.answer.headers.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(h.answer.headers.traceparent).not.toBe(tp);
    const q = await same(`/v1/locate/bbb-seg/init_180p.mp4?tp=${tp}&x=1`);
    expect(q.answer.headers.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-/);
    await same('/v1/locate/bbb-seg/init_180p.mp4', { traceparent: 'not-a-trace' });
    await same('/v1/locate/bbb-seg/seg_180p_001.m4s?cmcd=foo%20bar');
  });

  it('itLeavesEveryOtherAnswerToTheRoute: HEAD, 400, 404 and other paths answer alike through the framework', async () => {
    // A URL fastify cannot route (bad percent-encoding) is answered before its hooks: only its answer is compared.
    const unroutable = new Set(['/v1/locate/bbb-seg/%zz']);
    const cases: [string, 'GET' | 'HEAD', number][] = [
      ['/v1/locate/bbb-seg/init_180p.mp4', 'HEAD', 200],
      ['/v1/locate/bbb-seg/nope.mp4', 'GET', 404],
      ['/v1/locate/no-such-title/a.mp4', 'GET', 404],
      ['/v1/locate/bbb-seg/../x', 'GET', 400],
      ['/v1/locate/bbb-seg', 'GET', 400],
      ['/v1/locate/bbb-seg/a%2fb', 'GET', 400],
      ['/v1/locate/bbb-seg/%zz', 'GET', 400],
      ['/v1/locatex/bbb-seg/init_180p.mp4', 'GET', 404],
    ];
    for (const [path, method, status] of cases) {
      const { answer, claimed } = await same(path, {}, method);
      expect([path, answer.status]).toEqual([path, status]);
      if (!unroutable.has(path)) expect([path, claimed]).toEqual([path, false]);
    }
  });

  it('itCountsDecisionsAlike: the decisions counter of both servers holds the same series and values', async () => {
    const series = async (r: Registry) => {
      const m = await r.getSingleMetric('reelcdn_steering_decisions_total')!.get();
      return m.values.map((v) => `${JSON.stringify(v.labels)}=${v.value}`).sort();
    };
    expect(await series(front.registry)).toEqual(await series(ref.registry));
  });
});

describe('steering locate path over HTTP/2: answers equal to the route', () => {
  let world: SteeringWorld;
  const servers: SteeringServer[] = [];
  const sessions: ClientHttp2Session[] = [];
  const pki = makeTestPki(tempDir(), ['steering']);
  let ref: ClientHttp2Session;
  let front: ClientHttp2Session;
  let frontServer: Running;

  beforeAll(async () => {
    world = await steeringWorld();
    const config = { ...world.config, steering: { ...world.config.steering, url: 'https://127.0.0.1:1', tls: { ...pki.tls('steering'), requireClientCert: false } } };
    const both = await startRefAndFront(config, frozenClock(), servers);
    frontServer = both.front;
    for (const r of [both.ref, both.front]) sessions.push(h2connect(r.publicUrl, { ca: readFileSync(pki.caFile) }));
    [ref, front] = sessions as [ClientHttp2Session, ClientHttp2Session];
  }, 30_000);
  afterAll(async () => {
    for (const s of sessions) s.close();
    for (const server of servers) await server.close();
    await world?.close();
  });

  function get(session: ClientHttp2Session, path: string, headers: Record<string, string> = {}): Promise<Answer> {
    return new Promise((ok, fail) => {
      const stream = session.request({ ':path': path, ...headers });
      let status = 0;
      const flat: Record<string, string> = {};
      stream.on('response', (h) => {
        status = Number(h[':status']);
        for (const [k, v] of Object.entries(h)) if (!k.startsWith(':') && !VOLATILE.has(k) && v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : String(v);
      });
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => (body += d));
      stream.on('end', () => ok({ status, headers: flat, body }));
      stream.on('error', fail);
    });
  }

  it('itAnswersOverH2AsTheRouteDoes: 200s claimed without the framework, a 404 left to it', async () => {
    for (const [path, status, claimed] of [
      ['/v1/locate/bbb-seg/init_180p.mp4', 200, true],
      ['/v1/locate/bbb-hls/master.m3u8', 200, true],
      ['/v1/locate/bbb-seg/nope.mp4', 404, false],
    ] as const) {
      const want = await get(ref, path, { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' });
      const before = frontServer.routed;
      const got = await get(front, path, { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' });
      expect(normalised(got)).toEqual(normalised(want));
      expect([path, got.status, frontServer.routed === before]).toEqual([path, status, claimed]);
    }
  });
});

describe('locate path on its own', () => {
  const edges = [
    { id: 'e1', url: 'http://e1.example' },
    { id: 'e2', url: 'http://e2.example' },
  ];
  const base: LocatePathOptions<(typeof edges)[number]> = {
    decide: () => ({ isp: 'isp-a', edges }),
    has: () => true,
    signedQuery: () => 'e=1&k=k1&t=x',
    answered: () => {},
    logger: silent,
    logLevel: 'debug',
  };

  /** What the front path does with one request: claimed (and its answer) or left to the route. */
  async function through(path: string, o: Partial<typeof base> = {}, method = 'GET'): Promise<{ claimed: boolean; status?: number; body?: string }> {
    const front = createLocatePath({ ...base, ...o });
    let claimed = false;
    const server = createServer((req, res) => {
      claimed = front(req, res);
      if (!claimed) res.writeHead(599).end();
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const port = (server.address() as AddressInfo).port;
      const res = await new Promise<{ status: number; body: string }>((ok, fail) => {
        const r = httpRequest({ host: '127.0.0.1', port, path, method }, (m) => {
          let body = '';
          m.on('data', (d: Buffer) => (body += d.toString()));
          m.on('end', () => ok({ status: m.statusCode!, body }));
        });
        r.on('error', fail);
        r.end();
      });
      return { claimed, ...res };
    } finally {
      server.close();
    }
  }

  it('itClaimsOnlyWhatItAnswers200: no edge, a file not in the catalog, HEAD, POST, another path, a bad path', async () => {
    expect((await through('/v1/locate/t/f.mp4')).claimed).toBe(true);
    expect((await through('/v1/locate/t/f.mp4', { decide: () => ({ isp: undefined, edges: [] }) })).claimed).toBe(false);
    expect((await through('/v1/locate/t/f.mp4', { has: () => false })).claimed).toBe(false);
    expect((await through('/v1/locate/t/f.mp4', {}, 'HEAD')).claimed).toBe(false);
    expect((await through('/v1/locate/t/f.mp4', {}, 'POST')).claimed).toBe(false);
    expect((await through('/v1/play/t/f.m3u8')).claimed).toBe(false);
    expect((await through('/v1/locate/t')).claimed).toBe(false);
    expect((await through('/v1/locate/t/..')).claimed).toBe(false);
  });

  it('itCountsOnlyAnswers: answered() once per 200, never for a request it leaves', async () => {
    const isps: (string | undefined)[] = [];
    await through('/v1/locate/t/f.mp4', { answered: (isp) => isps.push(isp) });
    await through('/v1/locate/t/f.mp4', { answered: (isp) => isps.push(isp), has: () => false });
    expect(isps).toEqual(['isp-a']);
  });

  it('itWritesTheRoutesJson: title, file, isp, one signed URL per edge with the trace', async () => {
    const r = await through('/v1/locate/t/dir/f.mp4');
    const body = JSON.parse(r.body!) as { title: string; file: string; isp: string; urls: { edge: string; url: string }[] };
    expect(body).toMatchObject({ title: 't', file: 'dir/f.mp4', isp: 'isp-a' });
    expect(body.urls.map((u) => u.edge)).toEqual(['e1', 'e2']);
    expect(body.urls[0]!.url).toMatch(/^http:\/\/e1\.example\/c\/t\/dir\/f\.mp4\?e=1&k=k1&t=x&tp=00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });
  it('itWritesExactlyWhatJsonStringifyWrites: quotes, backslashes, controls, non-ASCII and lone surrogates in ids, URLs, ISPs and keys', async () => {
    const odd = [
      { id: 'e"1', url: 'http://e1.example/a\\b' },
      { id: 'é\u2028ü', url: 'http://e2.example/\u0001' },
      { id: 'lone\ud800', url: 'http://e3.example/😀' },
    ];
    const r = await through('/v1/locate/t/f.mp4', { decide: () => ({ isp: 'a\\b"c\n', edges: odd }), signedQuery: () => 'e=1&k=k"1\\&t=x' });
    const tp = /tp=(00-[0-9a-f]{32}-[0-9a-f]{16}-01)/.exec(r.body!)![1]!;
    const query = `e=1&k=k"1\\&t=x&tp=${tp}`;
    const want = JSON.stringify({ title: 't', file: 'f.mp4', isp: 'a\\b"c\n', urls: odd.map((e) => ({ edge: e.id, url: `${e.url}/c/t/f.mp4?${query}` })) });
    expect(r.body).toBe(want);
  });
});

describe('random ids from the pool', () => {
  it('itHandsOutEachByteOnce: 20,000 ids over several refills, all distinct, of the right form', () => {
    const hex = new Set<string>();
    const b64 = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      hex.add(randomHex(8));
      b64.add(randomBase64url(16));
    }
    expect(hex.size).toBe(10_000);
    expect(b64.size).toBe(10_000);
    for (const h of hex) expect(h).toMatch(/^[0-9a-f]{16}$/);
    for (const b of b64) expect(b).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });
});
