import { pino } from 'pino';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeConfig } from '../../src/common/config.js';
import type { PollResult } from '../../src/steering/health.js';
import { TOKEN, type SteeringWorld, steeringWorld } from '../steering-harness.js';

/**
 * A real steering server (real origin, the fixture titles) whose edges' /health answers the
 * test scripts: connections per edge, or a failed poll. Clients on 127.0.0.1 are in isp-a
 * (edge-a1, edge-a2); isp-b (edge-b1, edge-b2) is their overflow.
 */
interface Scripted {
  connections: number;
  up: boolean;
}

describe('steering: bounded loads, player hints, 410/429, incident TTL and explain on a real server', () => {
  let world: SteeringWorld;
  let publicUrl: string;
  let adminUrl: string;
  const script = new Map<string, Scripted>();
  const lines: Record<string, unknown>[] = [];
  const fetcher = async (edge: EdgeConfig): Promise<PollResult> => {
    const s = script.get(edge.id) ?? { connections: 100, up: true };
    if (!s.up) return { ok: false, error: 'ECONNREFUSED', latencyMs: 1 };
    return { ok: true, latencyMs: 1, report: { status: 'ok', id: edge.id, connections: s.connections, bytesPerSec: 0, errorRatio: 0 } };
  };
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });

  beforeAll(async () => {
    world = await steeringWorld();
    for (const e of world.edges) script.set(e.id, { connections: 100, up: true });
    const config = { ...world.config, steering: { ...world.config.steering, decisionBudget: { perSecond: 0, burst: 0 } } };
    // A miss may refresh the catalog at once: a 410 needs a catalog fetched after the request.
    ({ publicUrl, adminUrl } = await world.start({ config, healthFetcher: fetcher, logger, missRefreshMs: 1 }));
  }, 30_000);

  afterAll(async () => {
    await world?.close();
  });

  const steer = async (title: string, query = '') => {
    const res = await request(`${publicUrl}/v1/steer/${title}.json${query}`);
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body: res.statusCode === 200 ? (JSON.parse(text) as { TTL: number; 'PATHWAY-PRIORITY': string[] }) : undefined, text };
  };
  const priority = async (query = '') => (await steer('bbb-hls', query)).body!['PATHWAY-PRIORITY'];
  /** Waits for steering's view (polls every 50 ms) to satisfy `ok`. */
  const until = async <T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean): Promise<T> => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const v = await probe();
      if (ok(v)) return v;
      if (Date.now() > deadline) throw new Error(`${what}: last ${JSON.stringify(v)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const setAll = (connections: number) => {
    for (const s of script.values()) Object.assign(s, { connections, up: true });
  };
  const hintLines = () => lines.filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('player hint'));

  it('keepsAPlayerOnItsPathwayAndLogsWhatItSent', async () => {
    setAll(100);
    const plain = await until('every edge up', () => priority(), (p) => p.length === 4);
    const second = plain[1]!;
    expect(second.startsWith('edge-a')).toBe(true);
    const p = await priority(`?_HLS_pathway=${second}&_HLS_throughput=5000000`);
    expect(p[0]).toBe(second);
    expect(hintLines().at(-1)).toMatchObject({ msg: 'player hint', protocol: 'hls', pathway: second, throughputBps: 5_000_000, outcome: 'stay', first: second });
    // DASH: the last listed service location is the one in use.
    const d = await priority(`?_DASH_pathway=${encodeURIComponent(`"${plain[0]},${second}"`)}&_DASH_throughput=4000000,5000000`);
    expect(d[0]).toBe(second);
    expect(hintLines().at(-1)).toMatchObject({ protocol: 'dash', pathway: second, outcome: 'stay' });
  });

  it('movesAPlayerWhoseEdgeIsOverTheBoundAndNewSessionsSkipIt', async () => {
    setAll(100);
    const plain = await until('balanced', () => priority(), (p) => p.length === 4);
    const [first, second] = plain as [string, string];
    script.get(first)!.connections = 1000; // isp-a mean 550: bound 687.5
    const moved = await until('first edge over the bound', () => priority(`?_HLS_pathway=${first}&_HLS_throughput=5000000`), (p) => p[0] !== first);
    expect(moved[0]).toBe(second);
    const view = (await (await request(`${adminUrl}/v1/edges`, { headers: { authorization: `Bearer ${TOKEN}` } })).body.json()) as {
      edges: { id: string; load: { over: boolean; metric: string; bound: { connections: number } } | null }[];
    };
    expect(view.edges.find((e) => e.id === first)!.load).toMatchObject({ over: true, metric: 'connections' });
    expect(view.edges.find((e) => e.id === second)!.load).toMatchObject({ over: false });
    expect(hintLines().at(-1)).toMatchObject({ msg: 'player hint: moved', pathway: first, outcome: 'moved-over-bound', first: second });
    // A new session (no hint) and /v1/locate skip it too; it stays offered after its ISP's other edge.
    expect(await priority()).toEqual([second, first, ...plain.slice(2)]);
    const loc = (await (await request(`${publicUrl}/v1/locate/bbb-seg/seg_180p_000.m4s`)).body.json()) as { urls: { edge: string }[] };
    expect(loc.urls[0]!.edge).not.toBe(first);
    setAll(100);
    await until('back under the bound', () => priority(), (p) => p[0] === first);
  });

  it('movesAPlayerWhoseEdgeIsDownAndShortensTheTtlMeanwhile', async () => {
    setAll(100);
    const plain = await until('every edge up', () => priority(), (p) => p.length === 4);
    expect((await steer('bbb-hls')).body!.TTL).toBe(5);
    const [first] = plain as [string];
    script.get(first)!.up = false;
    const r = await until('first edge down', () => steer('bbb-hls', `?_HLS_pathway=${first}&_HLS_throughput=5000000`), (x) => !x.body!['PATHWAY-PRIORITY'].includes(first));
    expect(r.body!.TTL).toBe(2); // steering.incidentTtlSeconds
    expect(hintLines().at(-1)).toMatchObject({ pathway: first, outcome: 'moved-down' });
    // isp-b's players (127.2.0.0/16) are not in the incident: their TTL stays.
    const ispB = new Agent({ localAddress: '127.2.0.1' });
    const fromB = await request(`${publicUrl}/v1/steer/bbb-hls.json`, { dispatcher: ispB });
    expect(((await fromB.body.json()) as { TTL: number }).TTL).toBe(5);
    await ispB.close();
    script.get(first)!.up = true;
    const back = await until('first edge back', () => steer('bbb-hls'), (x) => x.body!['PATHWAY-PRIORITY'].includes(first));
    expect(back.body!.TTL).toBe(5);
  });

  it('judgesAnEdgeBackFromDownByItsNewReportsNotItsLoadBeforeIt', async () => {
    setAll(100);
    const plain = await until('every edge up', () => priority(), (p) => p.length === 4);
    const [first] = plain as [string];
    script.get(first)!.connections = 1000;
    await until('first edge over the bound', () => priority(), (p) => p[0] !== first);
    script.get(first)!.up = false;
    await until('first edge down', () => priority(), (p) => !p.includes(first));
    // It comes back with an ordinary load: offered again, it is first again at once (a load kept
    // from before it went down would hold it over the bound for several polls).
    Object.assign(script.get(first)!, { up: true, connections: 100 });
    const back = await until('first edge back', () => priority(), (p) => p.includes(first));
    expect(back[0]).toBe(first);
  });

  it('neverPutsFirstAPathwayThePlayerMeasuredFarBelowTheLadder', async () => {
    setAll(100);
    const plain = await until('every edge up', () => priority(), (p) => p.length === 4);
    // bbb-hls's lowest variant is 92,400 bit/s: 40,000 is under half of it. The ladder is read
    // in the background after the first reload that reports a throughput.
    const p = await until('the ladder read', () => priority(`?_HLS_pathway=${plain[0]}&_HLS_throughput=40000`), (x) => x[0] !== plain[0]);
    expect(p[0]).not.toBe(plain[0]);
    expect(hintLines().at(-1)).toMatchObject({ outcome: 'moved-low-throughput', ladderFloorBps: 92_400 });
  });

  it('keepsForgedHintsFromFloodingTheInfoLog', async () => {
    setAll(100);
    await until('every edge up', () => priority(), (p) => p.length === 4);
    // 200 reloads claiming another ISP's edge: each is moved home, but the info log hears of a
    // few a second, the rest at debug, counted in the next info line.
    const from = lines.length;
    const t0 = Date.now();
    for (let i = 0; i < 200; i++) await priority('?_HLS_pathway=edge-b1&_HLS_throughput=5000000');
    const seconds = (Date.now() - t0) / 1000;
    const moved = lines.slice(from).filter((l) => l.msg === 'player hint: moved');
    expect(moved.length).toBeGreaterThan(0);
    expect(moved.length).toBeLessThanOrEqual(5 * (Math.ceil(seconds) + 1));
    expect(moved.every((l) => l.level === 30)).toBe(true);
    expect(lines.slice(from).filter((l) => l.msg === 'player hint' && l.outcome === 'moved-home').length).toBe(200 - moved.length);
    await new Promise((r) => setTimeout(r, 1100));
    await priority('?_HLS_pathway=edge-b1&_HLS_throughput=5000000');
    expect(hintLines().at(-1)).toMatchObject({ msg: 'player hint: moved', outcome: 'moved-home' });
    expect(Number(hintLines().at(-1)!.suppressed)).toBeGreaterThan(0);
  });

  it('answers410ForATitleNotInTheCatalog', async () => {
    const r = await steer('left-the-catalog');
    expect(r.status).toBe(410);
    expect(r.text).toContain('no longer in the catalog');
  });

  it('explainsADecisionOnTheAdminPort', async () => {
    setAll(100);
    const plain = await until('every edge up', () => priority(), (p) => p.length === 4);
    const get = async (q: string, auth = true) => {
      const res = await request(`${adminUrl}/v1/explain?${q}`, { headers: auth ? { authorization: `Bearer ${TOKEN}` } : {} });
      const text = await res.body.text();
      return { status: res.statusCode, text, body: (res.statusCode === 200 ? JSON.parse(text) : {}) as Record<string, unknown> };
    };
    const e = await get('ip=127.0.0.1&title=bbb-hls');
    expect(e.status).toBe(200);
    expect(e.body).toMatchObject({ client: { address: '127.0.0.1', via: 'socket' }, isp: { id: 'isp-a', prefix: '127.0.0.0/16', how: 'prefix' } });
    expect((e.body.order as { edge: string }[]).map((o) => o.edge)).toEqual(plain);
    expect((await get('ip=127.0.0.1&title=bbb-hls', false)).status).toBe(401);
    const bad = await get('ip=999.1.1.1&title=bbb-hls');
    expect(bad.status).toBe(400);
    expect(bad.text).toBe('ip: "999.1.1.1" is not an IPv4 or IPv6 address\n');
    expect((await get('title=bbb-hls')).status).toBe(400);
    expect((await get('ip=127.0.0.1&title=..%2Fetc')).status).toBe(400);
    const unknown = await get('ip=127.0.0.1&title=no-such-title');
    expect(unknown.status).toBe(404);
    expect(unknown.text).toBe('title: "no-such-title" is not in the catalog\n');
  });
});

describe('steering: over its decision budget', () => {
  let world: SteeringWorld;
  let publicUrl: string;
  let adminUrl: string;
  const script = new Map<string, Scripted>();
  const fetcher = async (edge: EdgeConfig): Promise<PollResult> => {
    const s = script.get(edge.id) ?? { connections: 100, up: true };
    if (!s.up) return { ok: false, error: 'ECONNREFUSED', latencyMs: 1 };
    return { ok: true, latencyMs: 1, report: { status: 'ok', id: edge.id, connections: s.connections, bytesPerSec: 0, errorRatio: 0 } };
  };
  const agents = new Map<string, Agent>();
  /** A reload from a client address (127.0.0.0/16 is isp-a; 127.0.0.1 is a trusted proxy). */
  const steer = async (from: string, query: string, xff?: string) => {
    let agent = agents.get(from);
    if (!agent) agents.set(from, (agent = new Agent({ localAddress: from })));
    const res = await request(`${publicUrl}/v1/steer/bbb-hls.json${query}`, { dispatcher: agent, headers: xff ? { 'x-forwarded-for': xff } : {} });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body: res.statusCode === 200 ? (JSON.parse(text) as { TTL: number; 'PATHWAY-PRIORITY': string[] }) : undefined };
  };
  // 2 reloads a second, 4 saved: a test starts once the bucket is full again.
  const refilled = () => new Promise((r) => setTimeout(r, 2100));
  const HLS = '?_HLS_pathway=edge-a1&_HLS_throughput=5000000';
  const DASH = `?_DASH_pathway=${encodeURIComponent('"edge-a1"')}&_DASH_throughput=5000000`;
  const edgeState = async (id: string) => {
    const res = await request(`${adminUrl}/v1/edges`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return ((await res.body.json()) as { edges: { id: string; eligible: boolean; load: { over: boolean } | null }[] }).edges.find((e) => e.id === id)!;
  };
  const waitFor = async (what: string, ok: () => Promise<boolean>) => {
    const deadline = Date.now() + 5000;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(what);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  beforeAll(async () => {
    world = await steeringWorld();
    for (const e of world.edges) script.set(e.id, { connections: 100, up: true });
    const config = { ...world.config, steering: { ...world.config.steering, trustedProxies: ['127.0.0.1/32'], decisionBudget: { perSecond: 2, burst: 4 } } };
    ({ publicUrl, adminUrl } = await world.start({ config, healthFetcher: fetcher }));
  }, 30_000);

  afterAll(async () => {
    for (const a of agents.values()) await a.close();
    await world?.close();
  });

  it('keepsHlsPlayersPollingWithALongerTtlNever429', async () => {
    // hls.js 1.x stops reloading the steering manifest after a 429: an HLS player over the
    // budget gets its order with a longer TTL instead.
    await refilled();
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await steer('127.0.0.1', HLS));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(answers[0]!.body!.TTL).toBe(5);
    const longer = answers.filter((a) => a.body!.TTL > 5);
    expect(longer.length).toBeGreaterThanOrEqual(4);
    for (const a of longer) {
      expect(a.body!.TTL).toBeLessThanOrEqual(5 + 2 + 5);
      expect(a.body!['PATHWAY-PRIORITY'][0]).toBe('edge-a1'); // still steered: sticky
    }
  });

  it('answersDashPlayers429WithARetryAfterTheyCanRead', async () => {
    await refilled();
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await steer('127.0.0.1', DASH));
    expect(answers[0]!.status).toBe(200);
    const refused = answers.filter((a) => a.status === 429);
    expect(refused.length).toBeGreaterThanOrEqual(2);
    for (const r of refused) {
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(String(r.headers['access-control-expose-headers'])).toContain('Retry-After');
    }
    // Plays are not held back by the reload budget.
    expect((await request(`${publicUrl}/v1/play/bbb-hls/master.m3u8`)).statusCode).toBe(200);
  });

  it('neverRefusesAPlayerWhosePathwayIsDownOrOverTheBound', async () => {
    await refilled();
    for (let i = 0; i < 6; i++) await steer('127.0.0.1', DASH); // the budget spent
    expect((await steer('127.0.0.1', DASH)).status).toBe(429);
    script.get('edge-a1')!.connections = 1000;
    await waitFor('edge-a1 over the bound', async () => (await edgeState('edge-a1')).load?.over === true);
    for (let i = 0; i < 4; i++) {
      const r = await steer('127.0.0.1', DASH);
      expect(r.status).toBe(200);
      expect(r.body!['PATHWAY-PRIORITY'][0]).toBe('edge-a2');
      expect(r.body!.TTL).toBe(5);
    }
    script.get('edge-a1')!.up = false;
    await waitFor('edge-a1 down', async () => !(await edgeState('edge-a1')).eligible);
    for (let i = 0; i < 4; i++) {
      const r = await steer('127.0.0.1', HLS);
      expect(r.status).toBe(200);
      expect(r.body!['PATHWAY-PRIORITY']).not.toContain('edge-a1');
      expect(r.body!.TTL).toBe(2); // the incident TTL, not a longer one
    }
    Object.assign(script.get('edge-a1')!, { up: true, connections: 100 });
    await waitFor('edge-a1 back', async () => (await edgeState('edge-a1')).eligible);
  });

  it('sharesTheBudgetAmongClients', async () => {
    // One client hammering gets its share; the next clients still get theirs.
    await refilled();
    const first = [];
    for (let i = 0; i < 6; i++) first.push((await steer('127.0.0.2', DASH)).status);
    expect(first.filter((s) => s === 200).length).toBeLessThanOrEqual(2);
    expect((await steer('127.0.0.3', DASH)).status).toBe(200);
    expect((await steer('127.0.0.4', DASH)).status).toBe(200);
  });

  it('spreadsRetryAfterOverSeveralSecondsByTheTrustedClientAddress', async () => {
    // Behind a trusted proxy (127.0.0.1): the client is X-Forwarded-For's, and so is the spread.
    await refilled();
    const byClient = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const r = await steer('127.0.0.1', DASH, `198.51.100.${i}`);
      if (r.status === 429) byClient.set(`198.51.100.${i}`, Number(r.headers['retry-after']));
    }
    expect(byClient.size).toBeGreaterThanOrEqual(20);
    const values = new Set(byClient.values());
    expect(values.size).toBeGreaterThanOrEqual(3);
    expect(Math.min(...values)).toBeGreaterThanOrEqual(2);
    // The same client is told the same again.
    const [client, seconds] = [...byClient][0]!;
    expect(Number((await steer('127.0.0.1', DASH, client)).headers['retry-after'])).toBe(seconds);
  });
});
