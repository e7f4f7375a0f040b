import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NODE_TLS_FLAGS, TLS_CIPHER, checkForced, makeBenchTls, negotiated, nginxSslLines } from '../../bench/edge/tls.js';
import { median, summarize, tlsCostSpread } from '../../bench/edge/summary.js';
import { tlsCost, tlsCosts } from '../../bench/edge/tls-cost.js';
import { selectWorkloads, workloads } from '../../bench/edge/workloads.js';

const MiB = 1024 * 1024;
const KNOWN = ['hot-2m', 'hot-16k', 'disk-tier', 'cold', 'tls-hot-2m', 'tls-hot-16k'];

describe('edge bench: HTTPS workloads', () => {
  it('repeats hot-2m and hot-16k over HTTPS with the same requests', () => {
    const all = workloads((p) => `${p}?sig`);
    const tls = all.filter((w) => w.tls);
    expect(tls.map((w) => [w.key, w.tls?.plain])).toEqual([
      ['tls-hot-2m', 'hot-2m'],
      ['tls-hot-16k', 'hot-16k'],
    ]);
    const hot = all.find((w) => w.key === 'hot-2m')!;
    expect(tls[0]!.requests).toEqual(hot.requests);
    expect(tls[0]!.connections).toBe(hot.connections);
    expect(all.filter((w) => !w.tls).map((w) => w.key)).toEqual(['hot-2m', 'hot-16k', 'disk-tier', 'cold']);
  });

  it('selects workloads by list; tls is the HTTPS pair and their plain twins', () => {
    expect(selectWorkloads(undefined, KNOWN)).toBeUndefined();
    expect(selectWorkloads(' ', KNOWN)).toBeUndefined();
    expect(selectWorkloads('tls', KNOWN)).toEqual(['hot-2m', 'hot-16k', 'tls-hot-2m', 'tls-hot-16k']);
    expect(selectWorkloads('workers-2, cold', KNOWN)).toEqual(['cold', 'workers-2']);
    expect(selectWorkloads('tls-hot-16k', KNOWN)).toEqual(['tls-hot-16k']);
    expect(() => selectWorkloads('hot-2M', KNOWN)).toThrow(/unknown workload 'hot-2M'/);
  });
});

describe('edge bench: TLS cost per byte', () => {
  it('is the extra CPU per answer divided by the MiB of the answer', () => {
    const c = tlsCost({ server: 'nginx', workload: 'hot-2m', plainCpuUs: 800, tlsCpuUs: 1_800, bytesPerAnswer: 2 * MiB });
    expect(c).toMatchObject({ extraUs: 1_000, usPerMiB: 500, share: 1_000 / 1_800, mibPerCoreSecond: 2_000 });
    expect(tlsCost({ server: 'x', workload: 'hot-2m', plainCpuUs: 0, tlsCpuUs: 10, bytesPerAnswer: 1 })).toBeUndefined();
  });

  it('pairs every one-core HTTPS run with the same server plain, ceilings included', () => {
    const run = (server: string, workload: string, cpu: number, workers = 1) => ({
      server,
      workload,
      workers,
      cpuUsPerAnswer: cpu,
      load: { reqPerSec: 1_000, bytesPerSec: 1_000 * 16.5 * 1024 },
    });
    const costs = tlsCosts([
      run('node:http', 'hot-16k', 14),
      run('ReelCDN', 'hot-16k', 40),
      run('nginx', 'hot-16k', 24),
      run('Varnish', 'hot-16k', 22),
      run('ReelCDN', 'hot-16k', 30, 2),
      run('node:http', 'tls-hot-16k', 30),
      run('ReelCDN', 'tls-hot-16k', 60),
      run('nginx', 'tls-hot-16k', 40),
      run('nginx', 'tls-hot-2m', 2_000),
    ]);
    expect(costs.map((c) => [c.server, c.workload, c.extraUs, Math.round(c.usPerMiB)])).toEqual([
      ['node:http', 'hot-16k', 16, Math.round(16 / (16.5 / 1024))],
      ['ReelCDN', 'hot-16k', 20, Math.round(20 / (16.5 / 1024))],
      ['nginx', 'hot-16k', 16, Math.round(16 / (16.5 / 1024))],
    ]);
  });
});

describe('edge bench: TLS forced on the servers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-tls-'));
  const children: ReturnType<typeof spawn>[] = [];
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  async function bare(flags: readonly string[]): Promise<string> {
    const t = makeBenchTls(join(dir, `pki-${children.length}`));
    const script = join(process.cwd(), 'dist/bench/edge/bare-server.js');
    const child = spawn(process.execPath, [...flags, script, '--bytes', '16', '--cert', t.certFile, '--key', t.keyFile], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(child);
    return new Promise((ok, fail) => {
      child.stdout!.once('data', (d: Buffer) => ok(/listening (\S+)/.exec(d.toString())?.[1] ?? 'none'));
      child.once('exit', (code) => fail(new Error(`bare server exited ${code}`)));
    }).then((url) => `${url as string}|${t.ca.toString()}`);
  }

  it('node flags make a node:https server TLS 1.3 with AES-128-GCM alone; without them it is not', async () => {
    const [forcedUrl, forcedCa] = (await bare(NODE_TLS_FLAGS)).split('|') as [string, string];
    expect(forcedUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await checkForced(forcedUrl, Buffer.from(forcedCa))).toBe(`TLSv1.3 ${TLS_CIPHER} (checked by a handshake)`);
    const [url, ca] = (await bare([])).split('|') as [string, string];
    // Node's own order puts AES-256-GCM first: what the bench must not leave to chance.
    expect((await negotiated(url, Buffer.from(ca))).cipher).not.toBe(TLS_CIPHER);
    await expect(checkForced(url, Buffer.from(ca))).rejects.toThrow(/not TLSv1.3 TLS_AES_128_GCM_SHA256/);
  });

  it('writes the nginx lines for the same certificate and cipher', () => {
    const t = makeBenchTls(join(dir, 'nginx'));
    expect(nginxSslLines(t)).toContain(`ssl_certificate ${t.certFile};`);
    expect(nginxSslLines(t)).toContain('ssl_protocols TLSv1.3;');
    expect(nginxSslLines(t)).toContain(`ssl_conf_command Ciphersuites ${TLS_CIPHER};`);
  });
});

describe('edge bench: several runs as one', () => {
  const run = (server: string, workload: string, cpu: number, rps: number) => ({
    server,
    workload,
    workers: 1,
    cpuUsPerAnswer: cpu,
    load: { reqPerSec: rps, bytesPerSec: rps * 2 * MiB },
  });

  it('takes the median of each figure over the runs, with its range', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    const rows = summarize([
      [run('ReelCDN', 'hot-2m', 600, 900), run('nginx', 'hot-2m', 800, 500)],
      [run('ReelCDN', 'hot-2m', 500, 1_000)],
      [run('ReelCDN', 'hot-2m', 700, 400), run('nginx', 'hot-2m', 900, 300)],
    ]);
    expect(rows.map((r) => [r.server, r.cpuUsPerAnswer, r.reqPerSec.median, r.bytesPerAnswer])).toEqual([
      ['ReelCDN', { median: 600, min: 500, max: 700, n: 3 }, 900, 2 * MiB],
      ['nginx', { median: 850, min: 800, max: 900, n: 2 }, 400, 2 * MiB],
    ]);
  });

  it('gives each run its own TLS cost, then the median and range of those', () => {
    const costs = tlsCostSpread([
      [run('nginx', 'hot-2m', 800, 1), run('nginx', 'tls-hot-2m', 1_800, 1)],
      [run('nginx', 'hot-2m', 700, 1), run('nginx', 'tls-hot-2m', 1_300, 1)],
      [run('nginx', 'hot-2m', 900, 1)],
    ]);
    expect(costs).toEqual([{ server: 'nginx', workload: 'hot-2m', usPerMiB: { median: 400, min: 300, max: 500, n: 2 }, extraUs: { median: 800, min: 600, max: 1_000, n: 2 } }]);
  });
});
