import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeConfig } from '../../src/common/config.js';
import { computeBounds } from '../../src/steering/bounded-load.js';
import type { EdgeState, PollResult } from '../../src/steering/health.js';
import { degradedIsps, manifestCmsdDynamic } from '../../src/steering/isp-duress.js';
import { type SteeringWorld, steeringWorld } from '../steering-harness.js';

const EDGES = [
  { id: 'a1', isp: 'isp-a' },
  { id: 'a2', isp: 'isp-a' },
  { id: 'b1', isp: 'isp-b' },
];

describe('which ISPs are degraded (pure)', () => {
  const judge = (states: Record<string, EdgeState>, loads: Record<string, { connections: number; bytesPerSec: number }>) => {
    const eligible = new Set(Object.entries(states).filter(([, s]) => s === 'up' || s === 'suspect').map(([id]) => id));
    const bounds = computeBounds(EDGES, new Map(Object.entries(loads)), eligible, 1.25);
    return [...degradedIsps(EDGES, (id) => states[id], eligible, bounds)].sort();
  };
  const calm = { a1: { connections: 100, bytesPerSec: 0 }, a2: { connections: 100, bytesPerSec: 0 }, b1: { connections: 100, bytesPerSec: 0 } };

  it('none while every edge is up and under its bound', () => {
    expect(judge({ a1: 'up', a2: 'suspect', b1: 'up' }, calm)).toEqual([]);
  });
  it('an ISP with an edge down', () => {
    expect(judge({ a1: 'down', a2: 'up', b1: 'up' }, calm)).toEqual(['isp-a']);
  });
  it('an ISP with no eligible edge (not polled yet counts: its players go elsewhere)', () => {
    expect(judge({ a1: 'up', a2: 'up', b1: 'unknown' }, calm)).toEqual(['isp-b']);
  });
  it('an ISP whose every eligible edge is over its bound, not one with an edge under it', () => {
    // a1 over on connections, a2 over on bytes: each over on something, the bound is waived.
    const both = { ...calm, a1: { connections: 150, bytesPerSec: 1_000_000 }, a2: { connections: 50, bytesPerSec: 3_000_000 } };
    expect(judge({ a1: 'up', a2: 'up', b1: 'up' }, both)).toEqual(['isp-a']);
    const one = { ...calm, a1: { connections: 300, bytesPerSec: 0 }, a2: { connections: 100, bytesPerSec: 0 } };
    expect(judge({ a1: 'up', a2: 'up', b1: 'up' }, one)).toEqual([]);
  });
  it('the header: du for a degraded ISP, steering\'s bare member otherwise; no ISP: du when any is degraded', () => {
    expect(manifestCmsdDynamic('isp-a', new Set(['isp-a']))).toBe('"reelcdn-steering";du');
    expect(manifestCmsdDynamic('isp-b', new Set(['isp-a']))).toBe('"reelcdn-steering"');
    expect(manifestCmsdDynamic(undefined, new Set(['isp-a']))).toBe('"reelcdn-steering";du');
    expect(manifestCmsdDynamic(undefined, new Set())).toBe('"reelcdn-steering"');
  });
});

/**
 * A real steering (real origin, the fixture titles) whose edges' /health answers the test
 * scripts. Clients on 127.0.0.1 are in isp-a (edge-a1, edge-a2), 127.2.x.x in isp-b.
 */
describe('steering: CMSD-Dynamic with du on the manifests of a degraded ISP', () => {
  let world: SteeringWorld;
  let publicUrl: string;
  const script = new Map<string, { connections: number; bytesPerSec: number; up: boolean }>();
  const fetcher = async (edge: EdgeConfig): Promise<PollResult> => {
    const s = script.get(edge.id) ?? { connections: 100, bytesPerSec: 0, up: true };
    if (!s.up) return { ok: false, error: 'ECONNREFUSED', latencyMs: 1 };
    return { ok: true, latencyMs: 1, report: { status: 'ok', id: edge.id, connections: s.connections, bytesPerSec: s.bytesPerSec, errorRatio: 0 } };
  };
  const ispB = new Agent({ localAddress: '127.2.0.5' });

  beforeAll(async () => {
    world = await steeringWorld();
    for (const e of world.edges) script.set(e.id, { connections: 100, bytesPerSec: 0, up: true });
    const config = { ...world.config, steering: { ...world.config.steering, decisionBudget: { perSecond: 0, burst: 0 } } };
    ({ publicUrl } = await world.start({ config, healthFetcher: fetcher }));
  }, 30_000);

  afterAll(async () => {
    await ispB.close();
    await world?.close();
  });

  /** Every kind of manifest steering serves, as a player of isp-a (or isp-b) gets it. */
  const manifests = ['/v1/play/bbb-hls/master.m3u8', '/v1/play/bbb-hls/stream_180p.m3u8?pathway=edge-a1', '/v1/play/bbb-dash/manifest.mpd', '/v1/steer/bbb-hls.json'];
  const cmsdOf = async (path: string, b = false) => {
    const res = await request(`${publicUrl}${path}`, b ? { dispatcher: ispB, headers: { origin: 'https://player.example' } } : { headers: { origin: 'https://player.example' } });
    await res.body.dump();
    expect(res.statusCode, path).toBe(200);
    // A player on another origin reads it only if CORS exposes it.
    const exposed = String(res.headers['access-control-expose-headers'] ?? '').split(',').map((h) => h.trim().toLowerCase());
    expect(exposed, path).toContain('cmsd-dynamic');
    expect(res.headers['access-control-allow-origin']).toBe('*');
    return res.headers['cmsd-dynamic'];
  };
  const all = async (b = false) => Promise.all(manifests.map((m) => cmsdOf(m, b)));
  const until = async (what: string, ok: () => Promise<boolean>) => {
    const deadline = Date.now() + 5000;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const reset = () => {
    for (const s of script.values()) Object.assign(s, { connections: 100, bytesPerSec: 0, up: true });
  };

  it('sends steering\'s member without du while the ISP is healthy', async () => {
    reset();
    await until('every edge up, no du', async () => (await cmsdOf('/v1/steer/bbb-hls.json')) === '"reelcdn-steering"');
    expect(await all()).toEqual(manifests.map(() => '"reelcdn-steering"'));
  });

  it('du on every manifest of the ISP with an edge down, not on another ISP\'s; gone once it is back', async () => {
    reset();
    script.get('edge-a1')!.up = false;
    await until('edge-a1 down', async () => (await cmsdOf('/v1/steer/bbb-hls.json')) === '"reelcdn-steering";du');
    // The media playlist asked for edge-a1's pathway: served by the best edge now, with du.
    expect(await all()).toEqual(manifests.map(() => '"reelcdn-steering";du'));
    expect(await all(true)).toEqual(manifests.map(() => '"reelcdn-steering"'));
    script.get('edge-a1')!.up = true;
    await until('edge-a1 back (upAfter 2)', async () => (await cmsdOf('/v1/steer/bbb-hls.json')) === '"reelcdn-steering"');
    expect(await all()).toEqual(manifests.map(() => '"reelcdn-steering"'));
  });

  it('du while every eligible edge of the ISP is over its bound, none while one is under', async () => {
    reset();
    // edge-a1 over on connections, edge-a2 over on bytes: ranking waives the bound, players are told of the duress.
    Object.assign(script.get('edge-a1')!, { connections: 150, bytesPerSec: 1_000_000 });
    Object.assign(script.get('edge-a2')!, { connections: 50, bytesPerSec: 3_000_000 });
    await until('isp-a over', async () => (await cmsdOf('/v1/play/bbb-dash/manifest.mpd')) === '"reelcdn-steering";du');
    expect(await all()).toEqual(manifests.map(() => '"reelcdn-steering";du'));
    expect(await cmsdOf('/v1/play/bbb-dash/manifest.mpd', true)).toBe('"reelcdn-steering"');
    // edge-a2 back under: the ISP has room, no duress (edge-a1 alone is over and ranked last).
    Object.assign(script.get('edge-a2')!, { connections: 50, bytesPerSec: 1_000_000 });
    await until('isp-a has room', async () => (await cmsdOf('/v1/play/bbb-dash/manifest.mpd')) === '"reelcdn-steering"');
    expect(await all()).toEqual(manifests.map(() => '"reelcdn-steering"'));
  });
});
