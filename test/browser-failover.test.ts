import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, killMidPlay, launchBrowser, until } from './helpers/browser.js';
import { type ProcCluster, TITLES, startProcCluster } from './helpers/cluster-procs.js';

/**
 * kill -9 of the edge a real player streams from, mid-play (killMidPlay). Steering polls every
 * 200 ms and marks an edge down after 2 failed polls; the steering manifest's TTL is 1 s, so
 * players re-poll quickly.
 */
describe('browser: failover when the edge a player streams from is killed', () => {
  let cluster: ProcCluster;
  let browser: Browser;

  beforeAll(async () => {
    [cluster, browser] = await Promise.all([startProcCluster({ healthIntervalMs: 200, downAfter: 2, upAfter: 2, steeringTtlSeconds: 1 }), launchBrowser()]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await cluster?.close();
  });

  it('hls.js keeps playing on the next pathway; steering drops the edge, takes it back after restart', async () => {
    const stall = await killMidPlay(cluster, browser, TITLES.hlsBytes, 'master.m3u8', 'hls');
    expect(stall).toBeLessThan(6);
  });

  it('dash.js keeps playing on the next service location; steering drops the edge, takes it back after restart', async () => {
    const stall = await killMidPlay(cluster, browser, TITLES.dash, 'manifest.mpd', 'dash');
    expect(stall).toBeLessThan(6);
  });

  it('steering marks a killed edge down after downAfter polls, and up after upAfter polls once restarted', async () => {
    const id = 'edge-b1';
    const t0 = Date.now();
    await cluster.killEdge(id);
    await until(`${id} down`, 5_000, async () => ((await cluster.edgeState(id)).state === 'down' ? true : undefined));
    const downMs = Date.now() - t0;
    // Two failed polls 200 ms apart (a refused connection fails at once): well under 2 s.
    expect(downMs).toBeLessThan(2_000);
    expect((await cluster.steer(TITLES.hlsBytes))['PATHWAY-PRIORITY']).not.toContain(id);
    await cluster.startEdge(id);
    await until(`${id} up`, 5_000, async () => ((await cluster.edgeState(id)).state === 'up' ? true : undefined));
    expect((await cluster.steer(TITLES.hlsBytes))['PATHWAY-PRIORITY']).toContain(id);
  });
});

describe('browser: failover without help from steering (the player sees the dead edge first)', () => {
  let cluster: ProcCluster;
  let browser: Browser;

  // A steering manifest TTL of a minute: players do not re-poll during the test, so they
  // must leave the dead edge on their own, from failed requests (hls.js: pathway penalty;
  // dash.js: service location exclusion), to the next pathway listed at start.
  beforeAll(async () => {
    [cluster, browser] = await Promise.all([startProcCluster({ healthIntervalMs: 200, downAfter: 2, upAfter: 2, steeringTtlSeconds: 60 }), launchBrowser()]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await cluster?.close();
  });

  it('hls.js moves to the next pathway on its own', async () => {
    expect(await killMidPlay(cluster, browser, TITLES.hlsBytes, 'master.m3u8', 'hls-no-steering')).toBeLessThan(8);
  });

  it('dash.js moves to the next service location on its own', async () => {
    expect(await killMidPlay(cluster, browser, TITLES.dash, 'manifest.mpd', 'dash-no-steering')).toBeLessThan(8);
  });
});
