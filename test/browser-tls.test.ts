/// <reference lib="dom" />
// page.evaluate / waitForFunction callbacks run in the browser.
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spkiSha256Base64 } from '../src/common/cert-authority.js';
import { type Browser, type PlayerPage, killMidPlay, launchBrowser, openPlayer } from './helpers/browser.js';
import { type ProcCluster, TITLES, startProcCluster } from './helpers/cluster-procs.js';

/**
 * The players of browser-play and browser-failover on an HTTPS page: every listener of the
 * cluster (origin, steering, three `reelcdn edge` processes; public and admin) serves HTTPS with
 * certificates from a throwaway CA, and Chromium accepts exactly those certificates through
 * --ignore-certificate-errors-spki-list (their SPKI hashes), nothing else.
 */

/** The common name of the test CA, as Chromium reports a certificate's issuer. */
function caName(cluster: ProcCluster): string {
  return /(?:^|\n)CN=([^\n]+)/.exec(new X509Certificate(cluster.pki!.ca.certPem).subject)![1]!;
}

/** What every media answer of a TLS play must be: https from a known edge, over h2, its certificate from the test CA. */
async function expectSecureMedia(cluster: ProcCluster, p: PlayerPage): Promise<void> {
  const notHttps = p.media.filter((m) => !m.url.startsWith('https://') || cluster.edgeOf(m.url) === undefined);
  expect(notHttps, await p.diagnostics()).toEqual([]);
  const media = [...p.transports].filter(([url]) => new URL(url).pathname.startsWith('/c/'));
  expect(media.length, [...p.transports.keys()].join('\n')).toBeGreaterThan(0);
  const odd = media.filter(([, t]) => t.protocol !== 'h2' || t.tls !== 'TLS 1.3' || t.issuer !== caName(cluster));
  expect(odd, 'edges answer the browser over HTTP/2 and TLS 1.3 with a certificate of the test CA').toEqual([]);
}

describe('browser over HTTPS: players on an https page play through steering from https edges', () => {
  let cluster: ProcCluster;
  let browser: Browser;

  beforeAll(async () => {
    cluster = await startProcCluster({ tls: true, healthIntervalMs: 200, downAfter: 2, upAfter: 2, steeringTtlSeconds: 1 });
    browser = await launchBrowser({ spkiPins: cluster.browserPins });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await cluster?.close();
  });

  const playerUrl = (title: string, manifest: string) => `${cluster.steeringUrl}/player/?title=${title}&manifest=${manifest}&autoplay=1`;

  it('hls.js plays the byte-range title past 5 s from an https player page, every segment a 206 over h2 from the first-ranked edge', async () => {
    expect(cluster.steeringUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const first = (await cluster.steer(TITLES.hlsBytes))['PATHWAY-PRIORITY'][0]!;
    const p = await openPlayer(browser, playerUrl(TITLES.hlsBytes, 'master.m3u8'));
    try {
      await p.waitForTime(5, 30_000);
      const r = await p.reel();
      expect(r.errors, await p.diagnostics()).toEqual([]);
      expect(r.engine).toMatch(/^hls\.js/);
      // A secure context: what EME needs, and what blocks http:// media (mixed content).
      expect(await p.page.evaluate(() => window.isSecureContext)).toBe(true);
      expect(p.media.length).toBeGreaterThanOrEqual(4);
      const wrong = p.media.filter((m) => cluster.edgeOf(m.url) !== first || m.status !== 206 || !m.range?.startsWith('bytes='));
      expect(wrong, `first-ranked edge ${first}\n${await p.diagnostics()}`).toEqual([]);
      expect(p.failedMedia).toEqual([]);
      await expectSecureMedia(cluster, p);
      // Steering's own answers (page, players, steering manifest) come over h2 as well.
      const steering = [...p.transports].filter(([url]) => url.startsWith(cluster.steeringUrl));
      expect(steering.map(([u]) => new URL(u).pathname)).toEqual(
        expect.arrayContaining(['/player/', '/player/vendor/hls.min.js', `/v1/play/${TITLES.hlsBytes}/master.m3u8`, `/v1/steer/${TITLES.hlsBytes}.json`]),
      );
      expect(steering.filter(([, t]) => t.protocol !== 'h2' || t.issuer !== caName(cluster))).toEqual([]);
      expect(p.console.filter((l) => /mixed content|ERR_CERT|ERR_SSL/i.test(l))).toEqual([]);
      await p.screenshot('player-tls-hls.png');
    } finally {
      await p.page.close();
    }
  });

  it('dash.js plays the DASH title past 5 s from an https player page, every segment over h2 from the first-ranked edge', async () => {
    const first = (await cluster.steer(TITLES.dash))['PATHWAY-PRIORITY'][0]!;
    const p = await openPlayer(browser, playerUrl(TITLES.dash, 'manifest.mpd'));
    try {
      await p.waitForTime(5, 30_000);
      const r = await p.reel();
      expect(r.errors, await p.diagnostics()).toEqual([]);
      expect(r.engine).toMatch(/^dash\.js/);
      expect(p.media.length).toBeGreaterThanOrEqual(6);
      const wrong = p.media.filter((m) => cluster.edgeOf(m.url) !== first || m.status !== (m.range ? 206 : 200));
      expect(wrong, `first-ranked edge ${first}\n${await p.diagnostics()}`).toEqual([]);
      expect(p.failedMedia).toEqual([]);
      await expectSecureMedia(cluster, p);
      await p.screenshot('player-tls-dash.png');
    } finally {
      await p.page.close();
    }
  });

  it('hls.js keeps playing over https after kill -9 of its edge; steering drops the edge and takes it back after restart', async () => {
    const stall = await killMidPlay(cluster, browser, TITLES.hlsBytes, 'master.m3u8', 'tls-hls', async (p, { next }) => {
      await expectSecureMedia(cluster, p);
      expect(p.media.some((m) => cluster.edgeOf(m.url) === next)).toBe(true);
    });
    expect(stall).toBeLessThan(6);
  });

  it('dash.js keeps playing over https after kill -9 of its edge', async () => {
    const stall = await killMidPlay(cluster, browser, TITLES.dash, 'manifest.mpd', 'tls-dash', async (p, { next }) => {
      await expectSecureMedia(cluster, p);
      expect(p.media.some((m) => cluster.edgeOf(m.url) === next)).toBe(true);
    });
    expect(stall).toBeLessThan(6);
  });

  it('Chromium without the pins, or with the CA\'s pin only, refuses the https player page', async () => {
    const page = `${cluster.steeringUrl}/player/`;
    const refused = async (pins: string[] | undefined) => {
      const b = await launchBrowser(pins ? { spkiPins: pins } : {});
      try {
        const tab = await b.context.newPage();
        return await tab.goto(page, { timeout: 10_000 }).then(
          () => 'loaded',
          (err: Error) => /net::ERR_CERT_[A-Z_]+/.exec(err.message)?.[0] ?? err.message,
        );
      } finally {
        await b.close();
      }
    };
    expect(await refused(undefined)).toBe('net::ERR_CERT_AUTHORITY_INVALID');
    // The servers send their leaf certificate only; a pin of the CA (which they do not send) matches nothing.
    expect(await refused([spkiSha256Base64(cluster.pki!.ca.certPem)])).toBe('net::ERR_CERT_AUTHORITY_INVALID');
  });
});
