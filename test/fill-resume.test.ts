import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { FillProgress } from '../src/edge/fill-agent.js';
import { signQuery } from '../src/common/signing.js';
import { entryFilePath } from '../src/origin/catalog.js';
import { CLUSTER_ADMIN_TOKEN, type ClusterFiles, ingestSynthetic, makeCluster, postPlays, type RunningOrigin, startOrigin } from '../bench/offload-cluster.js';

const ROOT = resolve(import.meta.dirname, '..');
const SLICE = 64 * 1024;
const RATE = 250_000;

async function until(what: string, pred: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('fill resumes after kill -9', () => {
  let cluster: ClusterFiles;
  let origin: RunningOrigin;
  let child: ChildProcess | undefined;

  const startEdgeProcess = (): ChildProcess => {
    const p = spawn(process.execPath, [join(ROOT, 'dist/src/cli.js'), 'edge', '--config', cluster.file, '--id', 'a1', '--workers', '1'], {
      env: { ...process.env, REELCDN_ADMIN_TOKEN: CLUSTER_ADMIN_TOKEN },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    p.stderr!.on('data', (d) => process.stderr.write(d));
    return p;
  };
  const exited = (p: ChildProcess) => new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r())));
  const originBytes = () => origin.hits.filter((h) => h.path.startsWith('/o/')).reduce((s, h) => s + h.bytes, 0);

  beforeAll(async () => {
    // dist/ is built before any test runs (npm test, or test/global-setup.ts).
    // One always-open window and a slow rate: the fill of ~1.5 MB takes about six seconds.
    cluster = await makeCluster({ edges: 1, diskBytes: 20_000_000, sliceBytes: SLICE, bytesPerSec: RATE });
    await ingestSynthetic(cluster.config, ['movie'], 4, (_i, j) => 370_000 + j * 1000);
    origin = await startOrigin(cluster.config);
    await postPlays(cluster.config, Date.now(), { movie: 10 });
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
    await origin?.close();
  });

  it('keepsVerifiedSlicesAcrossAKillAndFetchesOnlyTheRest', async () => {
    const total = origin.server.catalog().get('movie')!.bytes;
    child = startEdgeProcess();
    await until('the fill to be under way', () => originBytes() >= total * 0.4);
    child.kill('SIGKILL');
    await exited(child);
    const firstRun = originBytes();
    expect(firstRun).toBeLessThan(total * 0.9); // killed in the middle, not at the end
    const staged = (await readdir(join(cluster.config.edges[0]!.dataDir, 'staging'))).filter((n) => !n.startsWith('.tmp-'));
    expect(staged.length).toBeGreaterThan(0);

    origin.hits.length = 0;
    child = startEdgeProcess();
    const admin = cluster.config.edges[0]!.adminUrl;
    let progress: FillProgress | undefined;
    await until('the resumed fill to finish', async () => {
      try {
        const res = await request(`${admin}/fill`, { headers: { authorization: `Bearer ${CLUSTER_ADMIN_TOKEN}` } });
        progress = (await res.body.json()) as FillProgress;
        return progress.heldTitles.includes('movie');
      } catch {
        return false;
      }
    });
    const secondRun = originBytes();
    console.log(`resume: ${firstRun} bytes before kill -9, ${secondRun} after restart, file ${total} bytes`);
    // The second run fetched only what the first had not made durable (at most the slice in flight is lost).
    expect(secondRun).toBeLessThanOrEqual(total - firstRun + SLICE);
    expect(secondRun).toBeLessThan(total);

    // And what it serves is the origin's bytes.
    const url = cluster.config.edges[0]!.url;
    for (const f of origin.server.catalog().get('movie')!.files) {
      const path = `/c/movie/${f.path}`;
      const res = await request(`${url}${path}?${signQuery(cluster.config.signing.keys, 'k1', path, Date.now() / 1000, 600)}`);
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-cache']).not.toBe('MISS');
      expect(Buffer.from(await res.body.arrayBuffer()).equals(await readFile(entryFilePath(cluster.config.origin.dataDir, origin.server.catalog().get('movie')!, f.path)))).toBe(true);
    }
    child.kill('SIGTERM');
    await exited(child);
  });
});
