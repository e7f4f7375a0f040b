/**
 * `npm run bench:fill`: does a fill starve clients? A real edge process serves hot cached
 * ranges under autocannon (BENCH_DURATION s, default 10) twice — alone, then while the same
 * edge runs a fill pass (POST /fill) of cold titles from a real origin process with a high
 * rate cap — and prints req/s and p99 latency both ways and the rate the fill achieved.
 * Loopback only, about a minute, removes its temp files. Results: docs/fill.md.
 */
import autocannon from 'autocannon';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ingestTitle } from '../src/origin/ingest.js';
import { CLUSTER_ADMIN_TOKEN, makeCluster } from './offload-cluster.js';

// As in bench/edge.ts: autocannon would keep every body as a string; nothing here reads them.
{
  const require = createRequire(import.meta.url);
  const queue = require('autocannon/lib/pipelinedRequestsQueue.js') as { prototype: { addBody(data: unknown): void } };
  queue.prototype.addBody = () => {};
}

const MiB = 1024 * 1024;
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const HOT_FILES = 16;
const HOT_FILE_BYTES = 4 * MiB;
const RANGE_BYTES = 1 * MiB;
const COLD_TITLES = 8;
const COLD_SEGMENTS = 16;
const COLD_SEGMENT_BYTES = 8 * MiB; // 1 GiB to fill: more than a 10 s run can move
const FILL_RATE = 1_000_000_000; // bytes/s: the cap is far above what loopback reaches
const CONNECTIONS = 16;

function writeTitle(root: string, name: string, segments: number, bytes: number): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-TARGETDURATION:4', '#EXT-X-PLAYLIST-TYPE:VOD'];
  for (let i = 0; i < segments; i++) {
    writeFileSync(join(dir, `seg${i}.m4s`), randomBytes(bytes));
    lines.push('#EXTINF:4.0,', `seg${i}.m4s`);
  }
  lines.push('#EXT-X-ENDLIST', '');
  writeFileSync(join(dir, 'index.m3u8'), lines.join('\n'));
  return dir;
}

async function waitHealthy(url: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await fetch(`${url}/health`).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not become healthy`);
}

interface Run {
  reqPerSec: number;
  p50: number;
  p99: number;
  bytesPerSec: number;
  errors: number;
  non2xx: number;
}

async function cannon(url: string, requests: autocannon.Request[]): Promise<Run> {
  const res = await autocannon({ url, connections: CONNECTIONS, pipelining: 1, duration: DURATION, requests });
  return { reqPerSec: res.requests.average, p50: res.latency.p50, p99: res.latency.p99, bytesPerSec: res.throughput.average, errors: res.errors, non2xx: res.non2xx };
}

interface FillState {
  state: string;
  bytes: { total: number; done: number; fetched: number };
  files: { total: number; done: number; failed: number };
  rateBytesPerSec: number;
}

async function main(): Promise<void> {
  const cold = Array.from({ length: COLD_TITLES }, (_, i) => `cold-${i}`);
  // A fill window far from now: the edge fills only when told to (POST /fill forces a pass).
  const h = (new Date().getUTCHours() + 12) % 24;
  const window = `${String(h).padStart(2, '0')}:00-${String(h).padStart(2, '0')}:01`;
  const cluster = await makeCluster({
    edges: 1,
    diskBytes: 4096 * MiB,
    memoryBytes: 256 * MiB,
    sliceBytes: 1 * MiB,
    window,
    bytesPerSec: FILL_RATE,
    pinnedTitles: cold,
    signingRequired: false,
  });
  const procs: ChildProcess[] = [];
  const cli = resolve(import.meta.dirname, '..', 'src', 'cli.js');
  const env = { ...process.env, REELCDN_ADMIN_TOKEN: CLUSTER_ADMIN_TOKEN };
  const auth = { authorization: `Bearer ${CLUSTER_ADMIN_TOKEN}` };
  const stop = async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(0) : p.once('exit', r)))));
    await rm(cluster.base, { recursive: true, force: true });
  };
  const deadline = setTimeout(() => {
    console.error('fill-vs-serving: over 2 minutes, giving up');
    void stop().finally(() => process.exit(1));
  }, 120_000);
  deadline.unref();
  try {
    const src = await mkdtemp(join(cluster.base, 'src-'));
    const hot = writeTitle(src, 'hot', HOT_FILES, HOT_FILE_BYTES);
    await ingestTitle(cluster.config, 'hot', hot);
    for (const t of cold) await ingestTitle(cluster.config, t, writeTitle(src, t, COLD_SEGMENTS, COLD_SEGMENT_BYTES));
    await rm(src, { recursive: true, force: true });

    procs.push(spawn(process.execPath, [cli, 'origin', '--config', cluster.file], { env, stdio: 'ignore' }));
    const edge = cluster.config.edges[0]!;
    procs.push(spawn(process.execPath, [cli, 'edge', '--config', cluster.file, '--id', edge.id, '--workers', '1'], { env, stdio: 'ignore' }));
    await waitHealthy(cluster.config.origin.adminUrl);
    await waitHealthy(edge.adminUrl);

    // Hot set: every 1 MiB range of 16 × 4 MiB files, fetched once so it is cached.
    const requests: autocannon.Request[] = [];
    for (let f = 0; f < HOT_FILES; f++) {
      for (let off = 0; off < HOT_FILE_BYTES; off += RANGE_BYTES) requests.push({ method: 'GET', path: `/c/hot/seg${f}.m4s`, headers: { range: `bytes=${off}-${off + RANGE_BYTES - 1}` } });
    }
    for (const r of requests) {
      const res = await fetch(`${edge.url}${r.path}`, { headers: r.headers as Record<string, string> });
      await res.arrayBuffer();
      if (res.status !== 206) throw new Error(`warming ${r.path} answered ${res.status}`);
    }
    await cannon(edge.url, requests.slice(0, 8)).catch(() => undefined); // JIT warm-up (also DURATION s)

    const alone = await cannon(edge.url, requests);
    const started = performance.now();
    const post = await fetch(`${edge.adminUrl}/fill`, { method: 'POST', headers: auth });
    if (post.status !== 202) throw new Error(`POST /fill answered ${post.status}`);
    const during = await cannon(edge.url, requests);
    const seconds = (performance.now() - started) / 1000;
    const after = (await (await fetch(`${edge.adminUrl}/fill`, { headers: auth })).json()) as FillState;
    const fetched = after.bytes.fetched; // the pass began with the load (its counters start at 0)
    // Then the rest of the pass with no clients: the rate the fill gets when it has the node alone.
    let last = after;
    const t1 = performance.now();
    while (last.state === 'filling' && performance.now() - t1 < 30_000) {
      await new Promise((r) => setTimeout(r, 250));
      last = (await (await fetch(`${edge.adminUrl}/fill`, { headers: auth })).json()) as FillState;
    }
    const aloneRate = (last.bytes.fetched - after.bytes.fetched) / ((performance.now() - t1) / 1000);

    const fmt = (r: Run) => `${r.reqPerSec.toFixed(0)} req/s, ${((r.bytesPerSec * 8) / 1e9).toFixed(2)} Gbit/s, p50 ${r.p50} ms, p99 ${r.p99} ms, errors ${r.errors}, non-2xx ${r.non2xx}`;
    console.log(`edge: ${CONNECTIONS} connections × ${DURATION} s of 1 MiB ranges over ${(HOT_FILES * HOT_FILE_BYTES) / MiB} MiB of hot cached files`);
    console.log(`  serving alone:        ${fmt(alone)}`);
    console.log(`  serving during fill:  ${fmt(during)}`);
    console.log(`  req/s during fill / alone: ${((during.reqPerSec / alone.reqPerSec) * 100).toFixed(1)} %, p99 ${alone.p99} → ${during.p99} ms`);
    console.log(`fill (cap ${(FILL_RATE / 1e6).toFixed(0)} MB/s) of ${(after.bytes.total / MiB).toFixed(0)} MiB of cold titles from the origin:`);
    console.log(`  during the load: ${(fetched / MiB).toFixed(0)} MiB in ${seconds.toFixed(1)} s = ${(fetched / seconds / 1e6).toFixed(1)} MB/s`);
    console.log(
      last.state === 'filling'
        ? `  after the load (30 s cap, not finished): ${(aloneRate / 1e6).toFixed(1)} MB/s`
        : `  after the load (no clients): ${(aloneRate / 1e6).toFixed(1)} MB/s until done; pass: ${last.files.done}/${last.files.total} files, ${last.files.failed} failed`,
    );
  } finally {
    clearTimeout(deadline);
    await stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
