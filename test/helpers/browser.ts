/// <reference lib="dom" />
// page.evaluate / waitForFunction callbacks run in the browser.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright-core';

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

/** Chromium with a fresh profile, closed (and the profile removed) by close(). */
export async function launchBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'reelcdn-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
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

/** A player page with everything a failing test needs to explain itself. */
export interface PlayerPage {
  page: Page;
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

export async function openPlayer(browser: Browser, url: string): Promise<PlayerPage> {
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
  await page.goto(url, { waitUntil: 'load', timeout: 20_000 });

  const reel = () =>
    page.evaluate(() => {
      const r = (window as unknown as { reel?: { errors: string[]; warnings: string[]; ranking: string[]; engine: string | null } }).reel;
      return { errors: r?.errors ?? [], warnings: r?.warnings ?? [], ranking: r?.ranking ?? [], engine: r?.engine ?? null };
    });
  const currentTime = () => page.evaluate(() => (document.querySelector('video') as HTMLVideoElement).currentTime);
  const diagnostics = async () => {
    const r = await reel().catch((e: Error) => ({ errors: [`page unreadable: ${e.message}`], warnings: [], ranking: [], engine: null }));
    const t = await currentTime().catch(() => NaN);
    const recent = media.slice(-12).map((m) => `  ${m.status} ${m.xCache ?? '-'} ${m.origin}${m.path} ${m.range ?? ''}`);
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
