/// <reference lib="dom" />
// page.evaluate / waitForFunction callbacks run in the browser.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { expect } from 'vitest';
import type { ProcCluster } from './cluster-procs.js';

/** Debian's chromium; override with REELCDN_CHROMIUM. */
export const CHROMIUM = process.env.REELCDN_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = resolve(import.meta.dirname, '..', '..', 'test-artifacts');

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  // A hidden, unfocused headless page must still play and fetch at full speed.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

export interface LaunchOptions {
  /**
   * Base64 SHA-256 hashes of the SubjectPublicKeyInfo of certificates Chromium accepts although
   * no system CA issued them (`--ignore-certificate-errors-spki-list`). Chromium matches them
   * against the chain the server sends, so they are the hashes of the leaf certificates, not of
   * the CA (the servers do not send it). Any other certificate error still fails the request:
   * this is not --ignore-certificate-errors.
   */
  spkiPins?: string[];
}

/** Chromium with a fresh profile, closed (and the profile removed) by close(). */
export async function launchBrowser(opts: LaunchOptions = {}): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'reelcdn-chromium-'));
  const pins = opts.spkiPins && opts.spkiPins.length > 0 ? [`--ignore-certificate-errors-spki-list=${opts.spkiPins.join(',')}`] : [];
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...ARGS, ...pins],
    viewport: { width: 1280, height: 800 },
    timeout: 30_000,
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** One media answer as the browser saw it. */
export interface MediaResponse {
  at: number;
  url: string;
  /** scheme://host:port of the edge. */
  origin: string;
  path: string;
  method: string;
  range: string | undefined;
  status: number;
  xCache: string | undefined;
}

/** How the browser got one answer: HTTP version and, over TLS, the certificate's issuer. */
export interface Transport {
  /** As Chromium's network stack names it: 'h2', 'http/1.1', …. */
  protocol: string;
  /** 'TLS 1.3', …; undefined over plain http. */
  tls: string | undefined;
  /** The issuer's common name of the certificate the server showed. */
  issuer: string | undefined;
}

/** A player page with everything a failing test needs to explain itself. */
export interface PlayerPage {
  page: Page;
  /**
   * Transport of the last answer to each URL (without its query), from the DevTools protocol:
   * the page cannot read a cross-origin answer's nextHopProtocol without Timing-Allow-Origin.
   */
  transports: Map<string, Transport>;
  /** Answers to /c/ (edge media) requests, in order of arrival. */
  media: MediaResponse[];
  /** Media requests that got no answer at all (connection refused, reset). */
  failedMedia: { at: number; url: string; error: string }[];
  console: string[];
  /** Every answer >= 400 and every failed request, any URL (for failure messages). */
  httpErrors: string[];
  /** video.currentTime. */
  currentTime(): Promise<number>;
  /** Waits until video.currentTime > seconds; on timeout throws with the player's errors and recent requests. */
  waitForTime(seconds: number, timeoutMs: number): Promise<void>;
  /** What the page itself recorded (window.reel): errors, warnings, ranking. */
  reel(): Promise<{ errors: string[]; warnings: string[]; ranking: string[]; engine: string | null }>;
  diagnostics(): Promise<string>;
  screenshot(name: string): Promise<string>;
}

export interface OpenOptions {
  /**
   * false: the page bypasses Chromium's HTTP cache, so every segment is a request on the wire.
   * A test about the network (a killed edge) needs it when an earlier page of the same browser
   * played the same URLs: cached answers would replay the dead edge's headers.
   */
  cache?: boolean;
  /**
   * The page's download rate once it has loaded, bytes/s (Chromium's network emulation, with 20 ms
   * of latency): a player on a real link, whose next request comes only once the current body is in.
   */
  downloadBytesPerSec?: number;
}

export async function openPlayer(browser: Browser, url: string, opts: OpenOptions = {}): Promise<PlayerPage> {
  const page = await browser.context.newPage();
  const media: MediaResponse[] = [];
  const failedMedia: PlayerPage['failedMedia'] = [];
  const consoleLines: string[] = [];
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
  const httpErrors: string[] = [];
  page.on('response', (res) => {
    if (res.status() >= 400) httpErrors.push(`${new Date().toISOString().slice(11, 23)} ${res.status()} ${res.request().method()} ${res.url().split('?')[0]}`);
  });
  page.on('requestfailed', (req) => {
    httpErrors.push(`${new Date().toISOString().slice(11, 23)} ${req.failure()?.errorText ?? 'failed'} ${req.method()} ${req.url().split('?')[0]}`);
  });
  page.on('response', (res) => {
    const u = new URL(res.url());
    if (!u.pathname.startsWith('/c/')) return;
    const req = res.request();
    media.push({
      at: Date.now(),
      url: res.url(),
      origin: u.origin,
      path: u.pathname,
      method: req.method(),
      range: req.headers().range,
      status: res.status(),
      xCache: res.headers()['x-cache'],
    });
  });
  page.on('requestfailed', (req) => {
    const u = new URL(req.url());
    if (u.pathname.startsWith('/c/')) failedMedia.push({ at: Date.now(), url: req.url(), error: req.failure()?.errorText ?? '?' });
  });
  const transports = new Map<string, Transport>();
  const cdp = await browser.context.newCDPSession(page);
  cdp.on('Network.responseReceived', ({ response: r }) => {
    transports.set(r.url.split('?')[0]!, { protocol: r.protocol ?? '', tls: r.securityDetails?.protocol, issuer: r.securityDetails?.issuer });
  });
  await cdp.send('Network.enable');
  if (opts.cache === false) await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await page.goto(url, { waitUntil: 'load', timeout: 20_000 });
  // Once the page and its player bundles are in: the link is the media's.
  if (opts.downloadBytesPerSec !== undefined) {
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20, downloadThroughput: opts.downloadBytesPerSec, uploadThroughput: -1 });
  }

  const reel = () =>
    page.evaluate(() => {
      const r = (window as unknown as { reel?: { errors: string[]; warnings: string[]; ranking: string[]; engine: string | null } }).reel;
      return { errors: r?.errors ?? [], warnings: r?.warnings ?? [], ranking: r?.ranking ?? [], engine: r?.engine ?? null };
    });
  const currentTime = () => page.evaluate(() => (document.querySelector('video') as HTMLVideoElement).currentTime);
  const diagnostics = async () => {
    const r = await reel().catch((e: Error) => ({ errors: [`page unreadable: ${e.message}`], warnings: [], ranking: [], engine: null }));
    const t = await currentTime().catch(() => NaN);
    const clock = (at: number) => new Date(at).toISOString().slice(11, 23);
    const recent = media.slice(-12).map((m) => `  ${clock(m.at)} ${m.status} ${m.xCache ?? '-'} ${m.origin}${m.path} ${m.range ?? ''}`);
    const failed = failedMedia.slice(-6).map((f) => `  ${f.error} ${f.url.split('?')[0]}`);
    return [
      `engine: ${r.engine}, currentTime: ${t}, ranking: ${r.ranking.join(' > ')}`,
      `player errors: ${r.errors.join(' | ') || 'none'}`,
      `player warnings: ${r.warnings.slice(-10).join(' | ') || 'none'}`,
      `recent media answers:\n${recent.join('\n') || '  none'}`,
      `failed media requests:\n${failed.join('\n') || '  none'}`,
      `HTTP errors (last 10):\n${httpErrors.slice(-10).join('\n') || '  none'}`,
      `console (last 20):\n${consoleLines.slice(-20).join('\n') || '  none'}`,
    ].join('\n');
  };
  return {
    page,
    transports,
    media,
    failedMedia,
    console: consoleLines,
    httpErrors,
    currentTime,
    reel,
    diagnostics,
    async waitForTime(seconds, timeoutMs) {
      try {
        await page.waitForFunction(
          (s) => {
            const v = document.querySelector('video') as HTMLVideoElement | null;
            const r = (window as unknown as { reel?: { errors: string[] } }).reel;
            if (r && r.errors.length > 0) throw new Error(`player failed: ${r.errors.join(' | ')}`);
            return v !== null && v.currentTime > s;
          },
          seconds,
          { timeout: timeoutMs, polling: 100 },
        );
      } catch (err) {
        throw new Error(`playback did not pass ${seconds} s within ${timeoutMs} ms (${(err as Error).message.split('\n')[0]})\n${await diagnostics()}`);
      }
    },
    async screenshot(name) {
      mkdirSync(ARTIFACTS, { recursive: true });
      const file = join(ARTIFACTS, name);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
  };
}

/** Players keep a 2 s forward buffer in killMidPlay, so they must fetch after the kill. */
const BUFFER_SEC = 2;

/** Polls `probe` every 50 ms until it returns a value. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
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
 * kill -9 mid-play: plays `title`, kills the first-ranked edge's process once playback passed
 * 2 s, and checks that playback goes on from another edge, that steering drops the dead edge
 * and takes it back once restarted. `inspect` sees the page once playback went on, before it
 * closes. Returns the measured stall (seconds of wall time not spent playing).
 */
export async function killMidPlay(
  cluster: ProcCluster,
  browser: Browser,
  title: string,
  manifest: string,
  name: string,
  inspect?: (p: PlayerPage, edges: { victim: string; next: string }) => Promise<void>,
): Promise<number> {
  const ranking = (await cluster.steer(title))['PATHWAY-PRIORITY'];
  const victim = ranking[0]!;
  const next = ranking[1]!;
  expect(cluster.edges.get(next)!.isp, 'the next pathway is in the same ISP').toBe(cluster.edges.get(victim)!.isp);
  let p: PlayerPage | undefined;
  try {
    p = await openPlayer(browser, `${cluster.steeringUrl}/player/?title=${title}&manifest=${manifest}&autoplay=1&buffer=${BUFFER_SEC}`, { cache: false });
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
    const killed = `${victim} killed at ${new Date(killWall).toISOString().slice(11, 23)} (${nMediaAtKill} media answers before), next: ${next}`;
    expect(new Set(after.map((m) => cluster.edgeOf(m.url))), `${killed}\n${await p.diagnostics()}`).toEqual(new Set([next]));
    // Byte ranges stay 206 on the new edge; whole files 200.
    expect(after.filter((m) => m.status !== (m.range ? 206 : 200))).toEqual([]);
    await p.screenshot(`player-failover-${name}.png`);
    await inspect?.(p, { victim, next });

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
