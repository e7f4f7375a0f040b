import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER_ADMIN_TOKEN, type ClusterFiles, ingestSynthetic, makeCluster, postPlays, type RunningOrigin, startOrigin } from '../../bench/offload-cluster.js';

/**
 * `reelcdn fill --now` against a real `reelcdn edge` process whose window is closed: the pass
 * runs at once and the command prints a progress line as it goes, then its summary.
 */

const CLI = join(resolve(import.meta.dirname, '..', '..'), 'dist', 'src', 'cli.js');
const RATE = 250_000;

/** A one-hour window twelve hours from now: closed for the whole test. */
function closedWindow(now = new Date()): string {
  const h = (now.getUTCHours() + 12) % 24;
  const hh = (n: number) => String(n).padStart(2, '0');
  return `${hh(h)}:00-${hh(h + 1)}:00`;
}

describe('reelcdn fill --now (a real edge process)', () => {
  let cluster: ClusterFiles;
  let origin: RunningOrigin;
  let edge: ChildProcess | undefined;

  beforeAll(async () => {
    // ~1.5 MB at 250 KB/s: about six seconds of fill, room for several progress lines.
    cluster = await makeCluster({ edges: 1, diskBytes: 20_000_000, sliceBytes: 64 * 1024, bytesPerSec: RATE, window: closedWindow() });
    await ingestSynthetic(cluster.config, ['movie'], 4, (_i, j) => 370_000 + j * 1000);
    origin = await startOrigin(cluster.config);
    await postPlays(cluster.config, Date.now(), { movie: 10 });
    edge = spawn(process.execPath, [CLI, 'edge', '--config', cluster.file, '--id', 'a1', '--workers', '1'], {
      env: { ...process.env, REELCDN_ADMIN_TOKEN: CLUSTER_ADMIN_TOKEN },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let errors = '';
    edge.stderr!.on('data', (d: Buffer) => (errors += d.toString()));
    const admin = cluster.config.edges[0]!.adminUrl;
    for (let i = 0; ; i++) {
      const ok = await request(`${admin}/health`).then(async (r) => (await r.body.dump(), r.statusCode === 200), () => false);
      if (ok) break;
      if (i > 200 || edge.exitCode !== null) throw new Error(`the edge did not come up (exit ${edge.exitCode}): ${errors}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);

  afterAll(async () => {
    if (edge && edge.exitCode === null) {
      const gone = new Promise((r) => edge!.once('exit', r));
      edge.kill('SIGTERM');
      await gone;
    }
    await origin?.close();
  });

  it('printsProgressLinesAsTheFillGoesThenItsSummary', async () => {
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((res) => {
      execFile(process.execPath, [CLI, 'fill', '--config', cluster.file, '--id', 'a1', '--now'], { env: { ...process.env, REELCDN_ADMIN_TOKEN: CLUSTER_ADMIN_TOKEN }, timeout: 60_000 }, (err, stdout, stderr) =>
        res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    const total = origin.server.catalog().get('movie')!.bytes;
    expect(lines.at(-1)).toBe(`fill of a1: 5/5 files, ${total} bytes fetched ({"origin":${total}}), 0 failed`);
    const progress = lines.slice(0, -1);
    expect(progress.length).toBeGreaterThanOrEqual(3);
    const PROGRESS = /^fill of a1: (\d)\/5 files, ([\d.]+) (B|KiB|MiB) of 1\.4 MiB \((\d+)%\), [\d.]+ (B|KiB|MiB)\/s$/;
    for (const l of progress) expect(l).toMatch(PROGRESS);
    // Each line says something new: the bytes placed only grow.
    const pcts = progress.map((l) => Number(PROGRESS.exec(l)![4]));
    for (let i = 1; i < pcts.length; i++) expect(pcts[i]).toBeGreaterThanOrEqual(pcts[i - 1]!);
    expect(new Set(progress).size).toBe(progress.length);
    expect(pcts[0]).toBeLessThan(100);
  }, 60_000);
});
