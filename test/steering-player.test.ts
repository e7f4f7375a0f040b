import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { playableManifests } from '../src/steering/player-routes.js';
import { rawRequest } from './helpers/http-tools.js';
import { type SteeringWorld, steeringWorld } from './steering-harness.js';

describe('steering: player page and title list', () => {
  let world: SteeringWorld;
  let url: string;

  beforeAll(async () => {
    world = await steeringWorld();
    url = (await world.start()).publicUrl;
  });
  afterAll(() => world.close());

  it('itListsTitlesWithTheirPlayableManifests', async () => {
    const res = await request(`${url}/v1/titles`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(await res.body.json()).toEqual({
      titles: [
        { title: 'bbb-dash', kind: 'dash', manifests: [{ file: 'manifest.mpd', kind: 'dash' }] },
        { title: 'bbb-hls', kind: 'hls', manifests: [{ file: 'master.m3u8', kind: 'hls' }] },
        { title: 'bbb-seg', kind: 'hls', manifests: [{ file: 'master.m3u8', kind: 'hls' }] },
      ],
    });
  });

  it('itServesThePageAndRedirectsTheBareFolder', async () => {
    const page = await request(`${url}/player/`);
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    const html = await page.body.text();
    expect(html).toContain('src="vendor/hls.min.js"');
    expect(html).not.toMatch(/src="https?:/); // no CDN
    const bare = await request(`${url}/player`);
    await bare.body.dump();
    expect(bare.statusCode).toBe(301);
    expect(bare.headers.location).toBe('/player/');
    const js = await request(`${url}/player/player.js`);
    expect(js.statusCode).toBe(200);
    await js.body.dump();
  });

  it('itServesOnlyTheTwoPlayerScriptsFromNodeModules', async () => {
    for (const f of ['hls.min.js', 'dash.all.min.js']) {
      const res = await request(`${url}/player/vendor/${f}`, { headers: { range: 'bytes=0-99' } });
      expect(res.statusCode, f).toBe(206);
      expect((await res.body.arrayBuffer()).byteLength).toBe(100);
    }
    for (const path of ['/player/vendor/package.json', '/player/vendor/..%2f..%2fpackage.json', '/player/../package.json', '/player/%2e%2e/package.json']) {
      const res = await rawRequest(url, path);
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.rest.toString(), path).not.toContain('"dependencies"');
    }
  });

  it('itTakesMpdsAndPlaylistsAsPlayable', () => {
    expect(playableManifests(['a/master.m3u8', 'manifest.mpd', 'notes.txt'])).toEqual([
      { file: 'a/master.m3u8', kind: 'hls' },
      { file: 'manifest.mpd', kind: 'dash' },
    ]);
  });
});
