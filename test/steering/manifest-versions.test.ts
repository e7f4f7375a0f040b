import { readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingestTitle } from '../../src/origin/ingest.js';
import { FIXTURES, TOKEN } from '../steering-harness.js';
import { copyFixture } from '../helpers/origin-harness.js';
import { type ManifestWorld, manifestWorld } from '../helpers/steering-origin.js';

const fromIspB = new Agent({ localAddress: '127.2.0.5' });

/** The fixture with every segment renamed `seg_` → `part_` / `chunk-` → `part-`, manifests to match. */
function renamedSegments(name: 'hls-segments' | 'dash'): string {
  const dir = copyFixture(name);
  const [from, to] = name === 'dash' ? ['chunk-', 'part-'] : ['seg_', 'part_'];
  for (const f of readdirSync(dir)) {
    if (f.startsWith(from)) renameSync(join(dir, f), join(dir, to + f.slice(from.length)));
    if (/\.(m3u8|mpd)$/.test(f)) writeFileSync(join(dir, f), readFileSync(join(dir, f), 'utf8').replaceAll(from, to));
  }
  return dir;
}

async function play(world: ManifestWorld, path: string, dispatcher?: Agent): Promise<{ status: number; body: string }> {
  const res = await request(`${world.steeringUrl}/v1/play/${path}`, dispatcher ? { dispatcher } : {});
  return { status: res.statusCode, body: await res.body.text() };
}

async function metric(world: ManifestWorld, name: string, outcome: string): Promise<number> {
  const res = await request(`${world.steeringAdminUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const text = await res.body.text();
  const m = new RegExp(`^${name}\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe('steering after a re-ingest', () => {
  let world: ManifestWorld;

  beforeAll(async () => {
    world = await manifestWorld();
    await ingestTitle(world.config, 'reel', join(FIXTURES, 'hls-segments'));
    await ingestTitle(world.config, 'reel-dash', join(FIXTURES, 'dash'));
    await world.start();
  }, 30_000);
  afterAll(async () => world?.close());

  it('itServesTheNewManifestsWithoutARestartWhenSegmentsAreRenamed', async () => {
    const before = await play(world, 'reel/index_180p.m3u8');
    expect(before.body).toContain('/c/reel/seg_180p_000.m4s?');
    const beforeDash = await play(world, 'reel-dash/manifest.mpd');
    expect(beforeDash.body).toContain('chunk-0-00001.m4s?');

    await ingestTitle(world.config, 'reel', renamedSegments('hls-segments'));
    await ingestTitle(world.config, 'reel-dash', renamedSegments('dash'));

    // The origin re-reads its catalog every 50 ms, steering every 100 ms: well within 10 s.
    const deadline = Date.now() + 10_000;
    let hls = before;
    let dash = beforeDash;
    while (Date.now() < deadline) {
      hls = await play(world, 'reel/index_180p.m3u8');
      dash = await play(world, 'reel-dash/manifest.mpd');
      if (hls.body.includes('part_180p_000') && dash.body.includes('part-0-00001')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(hls.status).toBe(200);
    expect(hls.body).toContain('/c/reel/part_180p_000.m4s?');
    expect(hls.body).not.toContain('seg_180p_');
    expect(dash.status).toBe(200);
    expect(dash.body).toContain('part-0-00001.m4s?');
    expect(dash.body).not.toContain('chunk-0-');
  }, 20_000);
});

describe('rewritten MPD cache', () => {
  let world: ManifestWorld;
  afterAll(async () => fromIspB.close());

  beforeAll(async () => {
    world = await manifestWorld();
    await ingestTitle(world.config, 'cached', join(FIXTURES, 'dash'));
    await world.start();
  }, 30_000);
  afterAll(async () => world?.close());

  it('itServesTheSecondPlayFromTheCacheWithItsOwnEdgesAndTrace', async () => {
    const cached = async () =>
      (await metric(world, 'reelcdn_steering_mpd_cache_total', 'hit')) + (await metric(world, 'reelcdn_steering_mpd_cache_total', 'stale'));
    const a = await play(world, 'cached/manifest.mpd');
    const b = await play(world, 'cached/manifest.mpd');
    const fromB = await play(world, 'cached/manifest.mpd', fromIspB);
    expect([a.status, b.status, fromB.status]).toEqual([200, 200, 200]);
    // The first play built it; the next two were answered from the cache (this token period's
    // entry, or the previous one's while the next is signed).
    expect(await metric(world, 'reelcdn_steering_mpd_cache_total', 'miss')).toBe(1);
    expect(await cached()).toBe(2);

    // Per play: its own trace / play id on each Representation's first reference.
    const trace = (s: string) => /init-0\.m4s\?[^"]*tp=([\w-]+)/.exec(s)?.[1];
    expect(trace(a.body)).toBeDefined();
    expect(trace(a.body)).not.toBe(trace(b.body));
    // Per client: its own ranked edges, even when served from the cache.
    const firstBase = (s: string) => /<BaseURL serviceLocation="([^"]+)"/.exec(s)?.[1];
    expect(firstBase(a.body)).toMatch(/^edge-a/);
    expect(firstBase(fromB.body)).toBe('edge-b1');
    expect(/defaultServiceLocation="([^"]+)"/.exec(fromB.body)?.[1]).toBe('edge-b1');
  });
});
