/// <reference lib="dom" />
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { utcDay } from '../src/origin/plays.js';
import { type Browser, launchBrowser, openPlayer } from './helpers/browser.js';
import { type ProcCluster, TITLES, startProcCluster } from './helpers/cluster-procs.js';

/**
 * Real players count: hls.js and dash.js in Chromium play through steering from `reelcdn edge`
 * processes, and each play reaches the origin's counts once an edge reported its media — the
 * play id must survive every URL a real player follows (media playlists, init segments).
 */
describe('browser: plays of real players reach the origin once', () => {
  let cluster: ProcCluster;
  let browser: Browser;

  beforeAll(async () => {
    [cluster, browser] = await Promise.all([startProcCluster({ healthIntervalMs: 200 }), launchBrowser()]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await cluster?.close();
  });

  const playsOf = (title: string) => cluster.origin.plays().countsFor(utcDay(Date.now()))['isp-a']?.[title] ?? 0;

  async function untilCounted(title: string, timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (playsOf(title) < 1) {
      if (Date.now() > end) throw new Error(`the play of ${title} was not counted within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it.each([
    ['hls.js', TITLES.hlsSegments, 'master.m3u8'],
    ['dash.js', TITLES.dash, 'manifest.mpd'],
  ])('%s: one play, counted once', async (_engine, title, manifest) => {
    expect(playsOf(title)).toBe(0);
    const p = await openPlayer(browser, `${cluster.steeringUrl}/player/?title=${title}&manifest=${manifest}&autoplay=1`);
    try {
      await p.waitForTime(2, 30_000);
      expect(p.media.some((m) => new URL(m.url).searchParams.has('pl')), p.media.map((m) => m.url).join('\n')).toBe(true);
      await untilCounted(title);
      // Every later segment carries the same id: still one play after a few more polls.
      await p.waitForTime(4, 30_000);
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      await p.page.close();
    }
    expect(playsOf(title)).toBe(1);
  });
});
