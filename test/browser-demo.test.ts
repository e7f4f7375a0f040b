/// <reference lib="dom" />
// page.evaluate / waitForFunction callbacks run in the browser.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, launchBrowser, openPlayer } from './helpers/browser.js';
import { CLI, ensureBuilt } from './helpers/cluster-procs.js';

/** Offsets from the base port that `reelcdn demo` listens on (src/demo.ts demoClusterFile). */
const DEMO_PORT_OFFSETS = [0, 1, 80, 81, 101, 102, 201, 501, 502, 601];

async function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base port whose whole demo block is free (not the default 7000: a developer's demo may be running). */
async function freeBasePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const checks = await Promise.all(DEMO_PORT_OFFSETS.map((o) => free(base + o)));
    if (checks.every(Boolean)) return base;
  }
  throw new Error('no free block of ports for the demo');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Direct children of a process (ps is in procps, present on Debian). */
function childrenOf(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((n) => n > 0);
  } catch {
    return []; // ps exits 1 when there are none
  }
}

describe('browser: reelcdn demo', () => {
  let demo: ChildProcess | undefined;
  let browser: Browser;
  let output = '';

  beforeAll(async () => {
    ensureBuilt();
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    if (demo && demo.exitCode === null) {
      demo.kill('SIGKILL');
      for (const pid of childrenOf(demo.pid!)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });

  it('starts, prints the player URL, plays a title in Chromium, and SIGINT stops every child', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reelcdn-demo-'));
    const base = await freeBasePort();
    const proc = spawn(process.execPath, [CLI, 'demo', '--dir', dir, '--base-port', String(base)], { stdio: ['ignore', 'pipe', 'pipe'] });
    demo = proc;
    proc.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (output += c.toString()));

    const playerUrl = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no player URL within 60 s; output so far:\n${output}`)), 60_000);
      const check = () => {
        const m = /^\s*player\s+(http:\/\/\S+)$/m.exec(output);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      };
      proc.stdout!.on('data', check);
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`demo exited (${signal ?? code}) before printing the player URL:\n${output}`));
      });
    });
    expect(playerUrl).toBe(`http://127.0.0.1:${base + 80}/player/`);

    const kids = childrenOf(proc.pid!);
    expect(kids.length, `children of the demo: ${kids.join(', ')}\n${output}`).toBe(5); // origin, 3 edges, steering

    const p = await openPlayer(browser, playerUrl);
    try {
      // The page lists the demo's titles; pick the byte-range HLS one and press Play like a person would.
      await p.page.waitForFunction(() => (document.getElementById('title') as HTMLSelectElement).options.length >= 3, null, { timeout: 15_000 });
      await p.page.selectOption('#title', JSON.stringify(['demo-hls', 'master.m3u8']));
      await p.page.click('#play');
      await p.waitForTime(5, 30_000);
      expect((await p.reel()).errors).toEqual([]);
      const edges = new Set(p.media.map((m) => m.origin));
      expect(edges.size, await p.diagnostics()).toBe(1);
      expect(p.media.every((m) => m.status === 206)).toBe(true);
      await p.page.waitForFunction(() => /edge-a\d/.test(document.getElementById('current')!.textContent ?? ''), null, { timeout: 5_000 });
      await p.screenshot('player-demo.png');
    } finally {
      await p.page.close();
    }

    // Ctrl-C: the demo stops every child and exits.
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
    expect(code, `demo did not exit within 20 s of SIGINT:\n${output}`).not.toBe('timeout');
    expect(code, output).toBe(0);
    expect(output).toContain('stopping the demo cluster');
    const left = kids.filter(alive);
    expect(left, `children still alive after SIGINT: ${left.join(', ')}`).toEqual([]);
  });
});

describe('browser: reelcdn demo --tls', () => {
  let demo: ChildProcess | undefined;
  let browser: Browser | undefined;

  afterAll(async () => {
    await browser?.close();
    if (demo && demo.exitCode === null) {
      const kids = childrenOf(demo.pid!);
      demo.kill('SIGKILL');
      for (const pid of kids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });

  it('Chromium launched with the pins the demo prints plays from its https player page', async () => {
    ensureBuilt();
    const dir = mkdtempSync(join(tmpdir(), 'reelcdn-demo-tls-'));
    const base = await freeBasePort();
    const proc = spawn(process.execPath, [CLI, 'demo', '--tls', '--dir', dir, '--base-port', String(base)], { stdio: ['ignore', 'pipe', 'pipe'] });
    demo = proc;
    let output = '';
    proc.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the demo was not up within 60 s; output so far:\n${output}`)), 60_000);
      proc.stdout!.on('data', () => {
        if (!output.includes('Ctrl-C stops every process')) return;
        clearTimeout(timer);
        resolve();
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`demo exited (${signal ?? code}) before it was up:\n${output}`));
      });
    });
    const playerUrl = /^\s*player\s+(https:\/\/\S+)$/m.exec(output)?.[1];
    expect(playerUrl, output).toBe(`https://127.0.0.1:${base + 80}/player/`);
    // Exactly what the demo tells a person to pass to Chromium.
    const pins = /--ignore-certificate-errors-spki-list=(\S+)/.exec(output)?.[1]?.split(',');
    expect(pins, output).toBeDefined();
    browser = await launchBrowser({ spkiPins: pins! });

    const p = await openPlayer(browser, playerUrl!);
    try {
      await p.page.waitForFunction(() => (document.getElementById('title') as HTMLSelectElement).options.length >= 3, null, { timeout: 15_000 });
      await p.page.selectOption('#title', JSON.stringify(['demo-hls', 'master.m3u8']));
      await p.page.click('#play');
      await p.waitForTime(5, 30_000);
      expect((await p.reel()).errors).toEqual([]);
      expect(p.media.length, await p.diagnostics()).toBeGreaterThan(0);
      expect(p.media.filter((m) => !m.url.startsWith('https://') || m.status !== 206), await p.diagnostics()).toEqual([]);
      const media = [...p.transports].filter(([u]) => new URL(u).pathname.startsWith('/c/'));
      expect(media.filter(([, t]) => t.protocol !== 'h2' || t.tls === undefined)).toEqual([]);
      await p.screenshot('player-demo-tls.png');
    } finally {
      await p.page.close();
    }

    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
    expect(code, output).toBe(0);
  });
});
