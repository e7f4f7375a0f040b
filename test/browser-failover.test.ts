import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, type PlayerPage, launchBrowser, openPlayer } from './helpers/browser.js';
import { type ProcCluster, TITLES, startProcCluster } from './helpers/cluster-procs.js';

/**
 * kill -9 of the edge a real player streams from, mid-play. Steering polls every 200 ms and
 * marks an edge down after 2 failed polls; the steering manifest's TTL is 1 s, so players
 * re-poll quickly. Players keep a 2 s forward buffer, so they must fetch after the kill.
 */
const BUFFER_SEC = 2;

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

/**
 * Plays `title`, kills the first-ranked edge once playback passed 2 s, and checks that
 * playback goes on from another edge, that steering drops the dead edge and takes it back
 * once restarted. Returns the measured stall (seconds of wall time not spent playing).
 */
async function killMidPlay(cluster: ProcCluster, browser: Browser, title: string, manifest: string, name: string): Promise<number> {
  const ranking = (await cluster.steer(title))['PATHWAY-PRIORITY'];
  const victim = ranking[0]!;
  const next = ranking[1]!;
  expect(cluster.edges.get(next)!.isp, 'the next pathway is in the same ISP').toBe(cluster.edges.get(victim)!.isp);
  let p: PlayerPage | undefined;
  try {
    p = await openPlayer(browser, `${cluster.steeringUrl}/player/?title=${title}&manifest=${manifest}&autoplay=1&buffer=${BUFFER_SEC}`);
    await p.waitForTime(2, 30_000);
    const before = p.media.filter((m) => m.status >= 200 && m.status < 300);
    expect(new Set(before.map((m) => cluster.edgeOf(m.url))), await p.diagnostics()).toEqual(new Set([victim]));

    const killAt = await p.currentTime();
    const killWall = Date.now();
    await cluster.killEdge(victim, 'SIGKILL');
    const nMediaAtKill = p.media.length;

    // Playback carries on well past the kill point (content is 12 s long).
    const target = Math.min(killAt + 6, 11);
    await p.waitForTime(target, 30_000);
    const reachedWall = Date.now();
    const stall = (reachedWall - killWall) / 1000 - (target - killAt);
    const r = await p.reel();
    expect(r.errors, await p.diagnostics()).toEqual([]);
    const after = p.media.slice(nMediaAtKill).filter((m) => m.status >= 200 && m.status < 300);
    expect(after.length, `media fetched after the kill\n${await p.diagnostics()}`).toBeGreaterThan(0);
    expect(new Set(after.map((m) => cluster.edgeOf(m.url))), await p.diagnostics()).toEqual(new Set([next]));
    // Byte ranges stay 206 on the new edge; whole files 200.
    expect(after.filter((m) => m.status !== (m.range ? 206 : 200))).toEqual([]);
    await p.screenshot(`player-failover-${name}.png`);

    // Steering has marked the victim down and leaves it out of the steering manifest.
    expect((await cluster.edgeState(victim)).state).toBe('down');
    expect((await cluster.steer(title))['PATHWAY-PRIORITY']).not.toContain(victim);

    const firstOnNext = ((after[0]!.at - killWall) / 1000).toFixed(2);
    console.log(
      `${name}: killed ${victim} at ${killAt.toFixed(2)} s; first segment from ${next} ${firstOnNext} s after the kill; reached ${target.toFixed(2)} s ` +
        `${((reachedWall - killWall) / 1000).toFixed(2)} s later: stall ${Math.max(0, stall).toFixed(2)} s; ` +
        `${p.failedMedia.length} failed media request(s)`,
    );
    return stall;
  } finally {
    await p?.page.close();
    // Restarted, the edge is ranked again (first: the ring order for the title is unchanged).
    await cluster.startEdge(victim);
    await until(`${victim} ranked again after restart`, 10_000, async () => ((await cluster.steer(title))['PATHWAY-PRIORITY'][0] === victim ? true : undefined));
    expect((await cluster.edgeState(victim)).state).toBe('up');
  }
}

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
