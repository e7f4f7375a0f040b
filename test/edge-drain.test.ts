import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_ADMIN_TOKEN, TEST_KEYS, randomTitle, tempDir, writeMedia } from './helpers/cluster.js';
import { TestOrigin } from './helpers/test-origin.js';

const repo = join(import.meta.dirname, '..');
const cli = join(repo, 'dist/src/cli.js');

/** dist/ is built before any test runs (npm test, or test/global-setup.ts). */
function ensureBuilt(): void {
  if (!existsSync(cli)) throw new Error('dist/src/cli.js is missing: run npm run build');
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

describe('edge process drain', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    ensureBuilt();
    await origin.start();
  }, 120_000);
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await origin.close();
  });

  it('finishes the in-flight response on SIGTERM, refuses new connections, and exits 0', async () => {
    const title = randomTitle();
    const data = writeMedia(root, title, 'slow.ts', 200_000);
    origin.behaviour.set(`/o/${title}/slow.ts`, { delayMs: 1500 });
    const dir = tempDir();
    const file = join(dir, 'cluster.json');
    writeFileSync(
      file,
      JSON.stringify({
        signing: { keys: TEST_KEYS, activeKey: 'k1', required: false },
        origin: { url: origin.url, adminUrl: 'http://127.0.0.1:1', dataDir: 'origin' },
        steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
        isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/8'] }],
        edges: [{ id: 'edge-a1', isp: 'isp-a', url: 'http://127.0.0.1:0', adminUrl: 'http://127.0.0.1:0', dataDir: 'edge', diskBytes: 50_000_000, memoryBytes: 10_000_000, sliceBytes: 65536 }],
        log: { level: 'info' },
      }),
    );
    child = spawn(process.execPath, [cli, 'edge', '--config', file, '--id', 'edge-a1', '--workers', '1'], {
      env: { ...process.env, REELCDN_ADMIN_TOKEN: TEST_ADMIN_TOKEN },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr!.on('data', (c) => (err += c));
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    const publicUrl = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`edge did not start: ${out}${err}`)), 15_000);
      child!.stdout!.on('data', (c) => {
        out += c;
        for (const line of out.split('\n')) {
          if (!line.includes('edge listening')) continue;
          clearTimeout(timer);
          resolve((JSON.parse(line) as { publicUrl: string }).publicUrl);
        }
      });
      child!.once('exit', (code) => reject(new Error(`edge exited ${code}: ${err}`)));
    });
    const port = Number(new URL(publicUrl).port);

    const inflight = request(`${publicUrl}/c/${title}/slow.ts`).then(async (res) => ({
      status: res.statusCode,
      body: Buffer.from(await res.body.arrayBuffer()),
    }));
    for (let i = 0; i < 200 && origin.countFor(`/o/${title}/slow.ts`) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(origin.countFor(`/o/${title}/slow.ts`)).toBe(1);

    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    expect(await refused(port)).toBe(true); // listening socket closed while the slow answer is still coming

    const answer = await inflight;
    expect(answer.status).toBe(200);
    expect(answer.body.equals(data)).toBe(true);
    expect(await exited).toBe(0);
    expect(out).toMatch(/"msg":"drained, exiting"/);
  }, 60_000);
});
