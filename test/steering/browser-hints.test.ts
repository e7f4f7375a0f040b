import { type Socket, connect } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SteeringServer, createSteeringServer } from '../../src/steering/server.js';
import { type Browser, type PlayerPage, launchBrowser, openPlayer, until } from '../helpers/browser.js';
import { ADMIN_TOKEN, type ProcCluster, TITLES, startProcCluster } from '../helpers/cluster-procs.js';

/**
 * Real players (hls.js, dash.js in Chromium) on a real cluster (origin, edge processes), steered
 * by a steering server whose log this test reads. The players' steering manifest reloads carry
 * _HLS_pathway / _DASH_pathway and their throughput; steering logs each one. Then the edge a
 * player streams from gets busy for real — 300 client connections held open on its public port,
 * which its /health reports — and the player's next reload moves it to the other edge of its ISP.
 */
describe('browser: players tell steering their pathway, and a player on a busy edge is moved', () => {
  let cluster: ProcCluster;
  let browser: Browser;
  let steering: SteeringServer;
  let steeringUrl: string;
  let adminUrl: string;
  const lines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    [cluster, browser] = await Promise.all([startProcCluster({ healthIntervalMs: 200, downAfter: 2, upAfter: 2, steeringTtlSeconds: 1 }), launchBrowser()]);
    steering = createSteeringServer({
      config: cluster.config,
      logger: pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) }),
      registry: new Registry(),
      adminToken: ADMIN_TOKEN,
      listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    });
    ({ publicUrl: steeringUrl, adminUrl } = await steering.start());
  }, 60_000);

  afterAll(async () => {
    await steering?.close();
    await browser?.close();
    await cluster?.close();
  });

  const hints = (protocol: string) => lines.filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('player hint') && l.protocol === protocol);
  const priority = async (title: string) => {
    const res = await request(`${steeringUrl}/v1/steer/${title}.json`);
    return ((await res.body.json()) as { 'PATHWAY-PRIORITY': string[] })['PATHWAY-PRIORITY'];
  };

  /** Holds `n` keep-alive connections open on an edge's public port, each after one request. */
  async function busy(edgeUrl: string, n: number): Promise<() => void> {
    const { hostname, port } = new URL(edgeUrl);
    const sockets: Socket[] = [];
    await Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<void>((ok, fail) => {
            const s = connect({ host: hostname, port: Number(port) }, () => {
              s.write(`GET /c/none/busy HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`);
            });
            s.once('data', () => ok());
            s.once('error', fail);
            sockets.push(s);
          }),
      ),
    );
    return () => {
      for (const s of sockets) s.destroy();
    };
  }

  async function playAndOverload(title: string, manifest: string, protocol: 'hls' | 'dash'): Promise<void> {
    const [first, next] = await priority(title);
    expect(cluster.edges.get(next!)!.isp).toBe(cluster.edges.get(first!)!.isp);
    let p: PlayerPage | undefined;
    let release: (() => void) | undefined;
    const steerUrls: string[] = [];
    try {
      p = await openPlayer(browser, `${steeringUrl}/player/?title=${title}&manifest=${manifest}&autoplay=1&buffer=2`, { cache: false });
      p.page.on('request', (r) => {
        if (r.url().includes('/v1/steer/')) steerUrls.push(r.url().slice(steeringUrl.length));
      });
      await p.waitForTime(1, 30_000);
      // The player told steering where it plays, and steering kept it there.
      const told = await until(`a ${protocol} steering reload with its pathway`, 10_000, async () => hints(protocol).find((l) => l.pathway === first)).catch(async (err: Error) => {
        throw new Error(`${err.message}\nhint lines: ${JSON.stringify(hints(protocol))}\nsteering manifest requests: ${JSON.stringify(steerUrls.slice(-10))}\n${await p!.diagnostics()}`);
      });
      expect(told, await p.diagnostics()).toMatchObject({ msg: 'player hint', outcome: 'stay', first });
      expect(typeof told.throughputBps === 'number' || protocol === 'dash').toBe(true);
      expect(new Set(p.media.filter((m) => m.status < 300).map((m) => cluster.edgeOf(m.url)))).toEqual(new Set([first]));

      // Its edge gets busy: 300 connections where the other edge of the ISP has a handful.
      const before = p.media.length;
      release = await busy(cluster.edges.get(first!)!.url, 300);
      const moved = await until(`steering moves the ${protocol} player off ${first}`, 15_000, async () =>
        hints(protocol).find((l) => l.pathway === first && l.outcome === 'moved-over-bound'),
      );
      expect(moved).toMatchObject({ msg: 'player hint: moved', first: next });
      // …and the player follows: media from the other edge.
      await until(`${protocol} media from ${next}`, 15_000, async () => (p!.media.slice(before).some((m) => m.status < 300 && cluster.edgeOf(m.url) === next) ? true : undefined));
      expect((await p.reel()).errors, await p.diagnostics()).toEqual([]);
      await p.screenshot(`steering-hints-${protocol}.png`);
    } finally {
      release?.();
      await p?.page.close();
      // The edge's connections close: it is back under the bound and first again.
      await until(`${first} first again`, 15_000, async () => ((await priority(title))[0] === first ? true : undefined));
    }
  }

  it('hls.js sends _HLS_pathway and _HLS_throughput; on a busy edge it is moved', async () => {
    await playAndOverload(TITLES.hlsBytes, 'master.m3u8', 'hls');
  });

  it('dash.js sends _DASH_pathway; on a busy edge it is moved', async () => {
    await playAndOverload(TITLES.dash, 'manifest.mpd', 'dash');
  });

  it('the dashboard explains a decision', async () => {
    const page = await browser.context.newPage();
    try {
      await page.goto(`${adminUrl}/dashboard#token=${encodeURIComponent(ADMIN_TOKEN)}`);
      await page.fill('#explain-ip', '127.0.0.1');
      await page.fill('#explain-title', TITLES.hlsBytes);
      await page.click('#explain-form button[type=submit]');
      await until('explain rows', 10_000, async () => ((await page.locator('#explain-edges tbody tr').count()) === 3 ? true : undefined));
      expect(await page.locator('#explain-client').textContent()).toContain('127.0.0.1 is in 127.0.0.0/16 of isp-a');
      const first = (await priority(TITLES.hlsBytes))[0]!;
      expect(await page.locator('#explain-edges tbody tr').first().textContent()).toContain(first);
      await page.fill('#explain-ip', 'bogus');
      await page.click('#explain-form button[type=submit]');
      await until('explain error', 10_000, async () => ((await page.locator('#explain-error').isVisible()) ? true : undefined));
      expect(await page.locator('#explain-error').textContent()).toBe('ip: "bogus" is not an IPv4 or IPv6 address');
    } finally {
      await page.close();
    }
  });
});
