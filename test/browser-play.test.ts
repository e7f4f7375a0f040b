/// <reference lib="dom" />
// page.evaluate / waitForFunction callbacks run in the browser.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { type Browser, launchBrowser, openPlayer } from './helpers/browser.js';
import { type ProcCluster, TITLES, startProcCluster } from './helpers/cluster-procs.js';

/**
 * Real players in Chromium against a real cluster on loopback: origin and steering in this
 * process, three `reelcdn edge` processes in two ISPs. The browser connects from 127.0.0.1,
 * so it belongs to isp-a.
 */
describe('browser: a player pointed at steering plays from the best edge of its ISP', () => {
  let cluster: ProcCluster;
  let browser: Browser;

  beforeAll(async () => {
    [cluster, browser] = await Promise.all([startProcCluster(), launchBrowser()]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await cluster?.close();
  });

  const playerUrl = (title: string, manifest: string) => `${cluster.steeringUrl}/player/?title=${title}&manifest=${manifest}&autoplay=1`;

  it('lists the catalog on the player page and serves the players from node_modules', async () => {
    const res = await request(`${cluster.steeringUrl}/v1/titles`);
    const body = (await res.body.json()) as { titles: { title: string; manifests: { file: string; kind: string }[] }[] };
    expect(body.titles.map((t) => t.title)).toEqual([TITLES.dash, TITLES.hlsBytes, TITLES.hlsSegments]);
    expect(body.titles.find((t) => t.title === TITLES.dash)!.manifests).toEqual([{ file: 'manifest.mpd', kind: 'dash' }]);
    for (const f of ['hls.min.js', 'dash.all.min.js']) {
      const v = await request(`${cluster.steeringUrl}/player/vendor/${f}`);
      expect(v.statusCode, f).toBe(200);
      expect(v.headers['content-type']).toMatch(/javascript/);
      expect((await v.body.text()).length).toBeGreaterThan(100_000);
    }
    const p = await openPlayer(browser, `${cluster.steeringUrl}/player/`);
    try {
      await p.page.waitForFunction(() => (document.getElementById('title') as HTMLSelectElement).options.length === 3, null, { timeout: 10_000 });
      const options = await p.page.$$eval('#title option', (os) => os.map((o) => o.textContent));
      expect(options).toEqual(['bbb-dash — manifest.mpd (DASH)', 'bbb-hls — master.m3u8 (HLS)', 'bbb-seg — master.m3u8 (HLS)']);
      expect(p.console.filter((l) => l.startsWith('[pageerror]'))).toEqual([]);
    } finally {
      await p.page.close();
    }
  });

  it('hls.js plays the byte-range title past 5 s, every segment a 206 from the first-ranked edge', async () => {
    const first = (await cluster.steer(TITLES.hlsBytes))['PATHWAY-PRIORITY'][0]!;
    const p = await openPlayer(browser, playerUrl(TITLES.hlsBytes, 'master.m3u8'));
    try {
      await p.waitForTime(5, 30_000);
      const r = await p.reel();
      expect(r.errors, await p.diagnostics()).toEqual([]);
      expect(r.engine).toMatch(/^hls\.js/);
      expect(p.media.length).toBeGreaterThanOrEqual(4);
      const wrong = p.media.filter((m) => cluster.edgeOf(m.url) !== first || m.status !== 206 || !m.range?.startsWith('bytes='));
      expect(wrong, `first-ranked edge ${first}\n${await p.diagnostics()}`).toEqual([]);
      expect(p.failedMedia).toEqual([]);
      // Playback went through the timeline: the init range and at least three media ranges, each fetched once.
      const ranges = p.media.filter((m) => m.path.endsWith('.mp4')).map((m) => `${m.path} ${m.range}`);
      expect(new Set(ranges).size, ranges.join('\n')).toBeGreaterThanOrEqual(4);
      expect(new Set(ranges).size, ranges.join('\n')).toBe(ranges.length);
      // The page shows where the segments came from.
      await p.page.waitForFunction(() => document.querySelectorAll('#segments tbody tr').length > 0);
      expect(await p.page.textContent('#current')).toContain(first);
      await p.screenshot('player-hls.png');
    } finally {
      await p.page.close();
    }
  });

  it('dash.js plays the DASH title past 5 s, every segment from the first-ranked edge', async () => {
    const first = (await cluster.steer(TITLES.dash))['PATHWAY-PRIORITY'][0]!;
    const p = await openPlayer(browser, playerUrl(TITLES.dash, 'manifest.mpd'));
    try {
      await p.waitForTime(5, 30_000);
      const r = await p.reel();
      expect(r.errors, await p.diagnostics()).toEqual([]);
      expect(r.engine).toMatch(/^dash\.js/);
      expect(p.media.length).toBeGreaterThanOrEqual(6);
      // One file per segment: plain GETs answered 200 (a ranged GET would be 206).
      const wrong = p.media.filter((m) => cluster.edgeOf(m.url) !== first || m.status !== (m.range ? 206 : 200));
      expect(wrong, `first-ranked edge ${first}\n${await p.diagnostics()}`).toEqual([]);
      expect(p.failedMedia).toEqual([]);
      // Playback went through the timeline: video segments 1 to 3 (4-6 s) at some quality, audio too.
      const numbers = (kind: RegExp) => new Set(p.media.map((m) => kind.exec(m.path)?.[1]).filter((n) => n !== undefined).map(Number));
      expect([...numbers(/chunk-[01]-(\d+)\.m4s$/)], p.media.map((m) => m.path).join('\n')).toEqual(expect.arrayContaining([1, 2, 3]));
      expect([...numbers(/chunk-2-(\d+)\.m4s$/)]).toEqual(expect.arrayContaining([1, 2, 3]));
      await p.screenshot('player-dash.png');
    } finally {
      await p.page.close();
    }
  });

  it('hls.js plays the segmented title from the first-ranked edge', async () => {
    const first = (await cluster.steer(TITLES.hlsSegments))['PATHWAY-PRIORITY'][0]!;
    const p = await openPlayer(browser, playerUrl(TITLES.hlsSegments, 'master.m3u8'));
    try {
      await p.waitForTime(5, 30_000);
      expect((await p.reel()).errors).toEqual([]);
      const wrong = p.media.filter((m) => cluster.edgeOf(m.url) !== first || m.status !== (m.range ? 206 : 200));
      expect(wrong, await p.diagnostics()).toEqual([]);
    } finally {
      await p.page.close();
    }
  });

  it('a client on 127.2.x.x (isp-b) is steered to isp-b\'s edge and gets its segments there', async () => {
    const agent = new Agent({ localAddress: '127.2.0.5' });
    try {
      const steer = await request(`${cluster.steeringUrl}/v1/steer/${TITLES.hlsBytes}.json`, { dispatcher: agent });
      const body = (await steer.body.json()) as { 'PATHWAY-PRIORITY': string[] };
      expect(body['PATHWAY-PRIORITY'][0]).toBe('edge-b1');
      // isp-a's edges follow as overflow, never before isp-b's.
      expect(body['PATHWAY-PRIORITY'].slice(1).sort()).toEqual(['edge-a1', 'edge-a2']);

      const media = await request(`${cluster.steeringUrl}/v1/play/${TITLES.hlsBytes}/stream_180p.m3u8`, { dispatcher: agent });
      expect(media.headers['x-steering-edge']).toBe('edge-b1');
      const text = await media.body.text();
      const seg = text.split('\n').find((l) => l.startsWith('http'))!;
      expect(cluster.edgeOf(seg)).toBe('edge-b1');
      const res = await request(seg, { dispatcher: agent, headers: { range: 'bytes=0-1353' } });
      expect(res.statusCode).toBe(206);
      expect((await res.body.arrayBuffer()).byteLength).toBe(1354);

      // The same request from 127.0.0.1 goes to isp-a.
      const a = await request(`${cluster.steeringUrl}/v1/steer/${TITLES.hlsBytes}.json`);
      const aBody = (await a.body.json()) as { 'PATHWAY-PRIORITY': string[] };
      expect(aBody['PATHWAY-PRIORITY'].slice(0, 2).sort()).toEqual(['edge-a1', 'edge-a2']);
    } finally {
      await agent.close();
    }
  });
});
