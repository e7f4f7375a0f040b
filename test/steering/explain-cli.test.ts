import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { steeringClusterFile } from '../../bench/steering-cluster.js';
import { tempDir } from '../helpers/cluster.js';
import { KEYS, TOKEN, type SteeringWorld, steeringWorld } from '../steering-harness.js';

const CLI = resolve(import.meta.dirname, '..', '..', 'dist', 'src', 'cli.js');

async function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

function run(args: string[], env: Record<string, string> = { REELCDN_ADMIN_TOKEN: TOKEN }): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('reelcdn explain', () => {
  const dir = tempDir();
  let world: SteeringWorld;
  let file: string;
  let deadFile: string;

  beforeAll(async () => {
    world = await steeringWorld();
    const adminPort = await freePort();
    await world.start({ listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: adminPort } } });
    const raw = (adminUrl: string) =>
      steeringClusterFile({ keys: KEYS, originUrl: world.originUrls.publicUrl, originAdminUrl: world.originUrls.adminUrl, steering: { adminUrl }, edges: world.edges });
    file = join(dir, 'cluster.json');
    writeFileSync(file, JSON.stringify(raw(`http://127.0.0.1:${adminPort}`)), { mode: 0o600 });
    deadFile = join(dir, 'dead.json');
    writeFileSync(deadFile, JSON.stringify(raw(`http://127.0.0.1:${await freePort()}`)), { mode: 0o600 });
    // Every edge polled once steering answers (start() polls before listening).
  }, 30_000);

  afterAll(async () => {
    await world?.close();
  });

  it('printsTheRunningSteeringsExplanation', async () => {
    const r = await run(['explain', '--config', file, '--ip', '127.0.0.1', '--title', 'bbb-hls']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('isp     isp-a — 127.0.0.1 is in 127.0.0.0/16 of isp-a');
    expect(r.stdout).toMatch(/\n {2}1\. edge-a\d: the title's ring order, under the bound/);
    expect(r.stdout).toMatch(/\n {2}3\. edge-b\d: another ISP's edge \(overflow\)/);
    const j = await run(['explain', '--config', file, '--ip', '127.2.0.9', '--title', 'bbb-hls', '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ client: { address: '127.2.0.9' }, isp: { id: 'isp-b', prefix: '127.2.0.0/16' } });
  });

  it('saysWhatSteeringRefused', async () => {
    const bad = await run(['explain', '--config', file, '--ip', 'nonsense', '--title', 'bbb-hls']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('reelcdn: steering answered HTTP 400: ip: "nonsense" is not an IPv4 or IPv6 address\n');
    const unknown = await run(['explain', '--config', file, '--ip', '127.0.0.1', '--title', 'no-such-title']);
    expect(unknown.stderr).toBe('reelcdn: steering answered HTTP 404: title: "no-such-title" is not in the catalog\n');
    const noToken = await run(['explain', '--config', file, '--ip', '127.0.0.1', '--title', 'bbb-hls'], { REELCDN_ADMIN_TOKEN: 'wrong' });
    expect(noToken.stderr).toContain('HTTP 401');
  });

  it('failsClearlyWhenSteeringCannotBeReachedAndOnMissingArguments', async () => {
    const dead = await run(['explain', '--config', deadFile, '--ip', '127.0.0.1', '--title', 'bbb-hls']);
    expect(dead.code).toBe(1);
    expect(dead.stderr).toMatch(/^reelcdn: steering's admin port http:\/\/127\.0\.0\.1:\d+ cannot be reached \(ECONNREFUSED\)/);
    const usage = await run(['explain', '--config', file, '--title', 'bbb-hls']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('explain needs --ip ADDRESS');
  });
});
