import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signQuery } from '../../src/common/signing.js';
import { TEST_ADMIN_TOKEN, TEST_KEYS, randomTitle, tempDir, writeMedia } from '../helpers/cluster.js';
import { TestOrigin } from '../helpers/test-origin.js';

/**
 * Access-log lines are written in batches, asynchronously: none may be lost when the edge is
 * stopped. A real `reelcdn edge` process answers a burst of requests — hits answered by the hit
 * path, errors by the object routes — and is sent SIGTERM right after the last answer; every
 * request has its line in what the process wrote before it exited.
 */
const repo = join(import.meta.dirname, '..', '..');
const cli = join(repo, 'dist/src/cli.js');

interface Line {
  msg: string;
  path?: string;
  status?: number;
  tier?: string;
  reqId?: string;
  method?: string;
  bytes?: number;
  ms?: number;
  remote?: string;
  traceparent?: string;
}

describe('edge access log', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    if (!existsSync(cli)) throw new Error('dist/src/cli.js is missing: run npm run build');
    await origin.start();
  });
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await origin.close();
  });

  it('itKeepsEveryRequestLineThroughSigterm', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'seg.m4s', 16 * 1024);
    const dir = tempDir();
    const file = join(dir, 'cluster.json');
    writeFileSync(
      file,
      JSON.stringify({
        signing: { keys: TEST_KEYS, activeKey: 'k1' },
        origin: { url: origin.url, adminUrl: 'http://127.0.0.1:1', dataDir: 'origin' },
        steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
        isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/8'] }],
        edges: [{ id: 'edge-a1', isp: 'isp-a', url: 'http://127.0.0.1:0', adminUrl: 'http://127.0.0.1:0', dataDir: 'edge', diskBytes: 50_000_000, memoryBytes: 10_000_000, sliceBytes: 65536 }],
        log: { level: 'info' },
      }),
    );
    child = spawn(process.execPath, [cli, 'edge', '--config', file, '--id', 'edge-a1'], {
      env: { ...process.env, REELCDN_ADMIN_TOKEN: TEST_ADMIN_TOKEN },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr!.on('data', (c) => (err += c));
    child.stdout!.on('data', (c) => (out += c));
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    const publicUrl = await new Promise<string>((resolve, reject) => {
      const timer = setInterval(() => {
        const line = out.split('\n').find((l) => l.includes('edge listening'));
        if (!line) return;
        clearInterval(timer);
        resolve((JSON.parse(line) as { publicUrl: string }).publicUrl);
      }, 20);
      child!.once('exit', (code) => {
        clearInterval(timer);
        reject(new Error(`edge exited ${code}: ${err}`));
      });
    });

    const path = `/c/${title}/seg.m4s`;
    const url = `${publicUrl}${path}?${signQuery(TEST_KEYS, 'k1', path, Date.now() / 1000, 3600)}`;
    const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const agent = new Agent({ connections: 8 });
    const statuses: number[] = [];
    const one = async (u: string, headers: Record<string, string> = {}) => {
      const res = await request(u, { dispatcher: agent, headers });
      await res.body.dump();
      statuses.push(res.statusCode);
    };
    await one(url); // MISS, then it is cached
    const burst: Promise<void>[] = [];
    for (let i = 0; i < 400; i++) burst.push(one(url, i % 50 === 0 ? { traceparent: tp, range: 'bytes=0-99' } : {}));
    for (let i = 0; i < 20; i++) burst.push(one(`${publicUrl}${path}`)); // 403: the object routes
    await Promise.all(burst);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await agent.close();

    const lines = out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Line)
      .filter((l) => l.msg === 'request');
    expect(lines).toHaveLength(421);
    expect(statuses.filter((s) => s === 200)).toHaveLength(393);
    expect(lines.filter((l) => l.status === 200 && l.path === path && l.method === 'GET')).toHaveLength(393);
    expect(lines.filter((l) => l.status === 206 && l.traceparent === tp && l.bytes === 100)).toHaveLength(8);
    expect(lines.filter((l) => l.status === 403)).toHaveLength(20);
    const hit = lines.find((l) => l.tier === 'HIT-MEM')!;
    expect(hit).toMatchObject({ method: 'GET', path, status: 200, bytes: 16 * 1024, remote: '127.0.0.1' });
    expect(typeof hit.reqId).toBe('string');
    expect(typeof hit.ms).toBe('number');
    // Ids unique: one line per request, not a line twice.
    expect(new Set(lines.map((l) => l.reqId)).size).toBe(421);
    // The token never reaches the log.
    expect(out).not.toMatch(/[?&]t=/);
  }, 60_000);
});
