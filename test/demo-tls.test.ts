import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { spkiSha256Base64 } from '../src/common/cert-authority.js';
import { CLI, ensureBuilt } from './helpers/cluster-procs.js';
import { tempDir } from './helpers/cluster.js';

/** Offsets from the base port that `reelcdn demo` listens on (src/demo.ts demoClusterFile). */
const DEMO_PORT_OFFSETS = [0, 1, 80, 81, 101, 102, 201, 501, 502, 601];

async function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base port whose whole demo block is free (not 7000: a developer's demo may be running). */
async function freeBasePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await Promise.all(DEMO_PORT_OFFSETS.map((o) => free(base + o)))).every(Boolean)) return base;
  }
  throw new Error('no free block of ports for the demo');
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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** What a request came to: its status, or the error's code when there was no answer. */
async function outcome(url: string, opts: Parameters<typeof request>[1] = {}): Promise<number | string> {
  try {
    const res = await request(url, { headersTimeout: 5000, bodyTimeout: 5000, ...opts });
    await res.body.dump();
    return res.statusCode;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

describe('reelcdn demo --tls', () => {
  let demo: ChildProcess | undefined;
  let kids: number[] = [];

  afterAll(() => {
    // Whatever the test left running, by pid: the demo and the processes it started.
    for (const pid of [demo?.pid, ...kids]) {
      if (pid === undefined || !alive(pid)) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  it('serves every listener over HTTPS verified by the CA it prints, and nothing over plain http', async () => {
    ensureBuilt();
    const dir = tempDir('reelcdn-demo-tls-');
    const base = await freeBasePort();
    const proc = spawn(process.execPath, [CLI, 'demo', '--tls', '--dir', dir, '--base-port', String(base)], { stdio: ['ignore', 'pipe', 'pipe'] });
    demo = proc;
    let output = '';
    proc.stdout!.on('data', (d) => (output += d));
    proc.stderr!.on('data', (d) => (output += d));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the demo did not come up within 90 s:\n${output}`)), 90_000);
      const check = () => {
        if (output.includes('Ctrl-C stops every process')) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout!.on('data', check);
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the demo exited (${signal ?? code}) before it was up:\n${output}`));
      });
    });
    kids = childrenOf(proc.pid!);
    expect(kids.length, output).toBe(5); // origin, 3 edges, steering

    // It prints the CA to trust, and Chromium's pins: one per service's certificate.
    const caFile = join(dir, 'tls', 'ca.pem');
    expect(output).toContain(`CA to trust  ${caFile}`);
    const pins = /--ignore-certificate-errors-spki-list=(\S+)/.exec(output)?.[1]?.split(',') ?? [];
    const services = ['origin', 'steering', 'edge-a1', 'edge-a2', 'edge-b1'];
    expect(pins.sort()).toEqual(services.map((s) => spkiSha256Base64(readFileSync(join(dir, 'tls', `${s}.pem`)))).sort());

    const trusting = new Agent({ connect: { ca: readFileSync(caFile) } });
    try {
      // A play through steering over HTTPS, verified against the printed CA only.
      const steering = `https://127.0.0.1:${base + 80}`;
      const play = await request(`${steering}/v1/play/demo-hls-segments/index_180p.m3u8`, { dispatcher: trusting });
      const playlist = await play.body.text();
      expect(play.statusCode, playlist).toBe(200);
      const segment = playlist.split('\n').find((l) => l.startsWith('https://') && l.includes('seg_180p_000'));
      expect(segment, playlist).toMatch(new RegExp(`^https://127\\.0\\.0\\.1:(${base + 101}|${base + 102})/`));
      const seg = await request(segment!, { dispatcher: trusting });
      const bytes = Buffer.from(await seg.body.arrayBuffer());
      expect(seg.statusCode).toBe(200);
      expect(bytes.length).toBeGreaterThan(0);

      // Every admin port answers over HTTPS too.
      for (const port of [base + 1, base + 81, base + 501, base + 502, base + 601]) {
        expect(await outcome(`https://127.0.0.1:${port}/health`, { dispatcher: trusting }), `admin :${port}`).toBe(200);
      }
      // A client that does not trust the demo CA is refused by its own verification.
      expect(await outcome(`${steering}/health`)).toMatch(/CERT|SIGNATURE|ISSUER|SELF_SIGNED/);
      // No listener speaks plain http.
      for (const port of [base, base + 1, base + 80, base + 81, base + 101, base + 501]) {
        const plain = await outcome(`http://127.0.0.1:${port}/health`);
        expect(typeof plain === 'string' || plain >= 400, `plain http on :${port} got ${plain}`).toBe(true);
      }
    } finally {
      await trusting.close();
    }

    // Ctrl-C stops every child, as the plain demo does.
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
    expect(code, output).toBe(0);
    expect(kids.filter(alive)).toEqual([]);
  });
});
