/**
 * `npm run bench:steering` — steering decisions per second on loopback.
 *
 * A child process runs a real origin (the fixture titles), four fake edge /health servers and
 * a real steering server; this process drives it with autocannon:
 *   locate   GET /v1/locate/{title}/{file}   (ranking + one signed URL per edge, JSON)
 *   steer    GET /v1/steer/{title}.json       (ranking, JSON)
 *   play-mv  GET /v1/play/{title}/master.m3u8 (multivariant rewrite, records a play)
 *   play-media GET /v1/play/{title}/{media}.m3u8?pathway=… (media playlist, 6 signed URLs)
 * then times the prefix table with 1,000,000 random prefixes. Measures, asserts nothing.
 * Knobs: BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 50).
 */
import autocannon from 'autocannon';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { ingestTitle } from '../src/origin/ingest.js';
import { runPrefixBench } from './prefix.js';
import { runBench, serveSteeringCluster } from './steering-cluster.js';

const TOKEN = 'bench-admin-token';
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const HERE = fileURLToPath(import.meta.url);
const FIXTURES = resolve(HERE, '..', '..', '..', 'test', 'fixtures', 'media');

/** Child: origin + fake edges + steering; prints the steering URL, runs until SIGTERM. */
async function serve(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'reelcdn-bench-steering-'));
  const logger = pino({ level: 'silent' });
  const { urls, close } = await serveSteeringCluster({
    base,
    logger,
    adminToken: TOKEN,
    edgeIds: ['edge-a1', 'edge-a2', 'edge-b1', 'edge-b2'],
    cluster: { keys: { k1: 'bench-secret-0123456789abcdef' }, steering: { healthIntervalMs: 500 } },
    async beforeOrigin(config) {
      await ingestTitle(config, 'bbb-hls', join(FIXTURES, 'hls-bytes'));
      await ingestTitle(config, 'bbb-seg', join(FIXTURES, 'hls-segments'));
    },
  });
  process.stdout.write(`${JSON.stringify(urls)}\n`);
  process.on('SIGTERM', () => {
    void close().then(() => process.exit(0));
  });
}

interface Row {
  name: string;
  reqPerSec: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function load(name: string, url: string, requests?: autocannon.Request[]): Promise<Row> {
  await autocannon({ url, connections: CONNECTIONS, duration: 2, requests }); // warm-up
  const r = await autocannon({ url, connections: CONNECTIONS, duration: DURATION, requests });
  return { name, reqPerSec: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors };
}

async function main(): Promise<void> {
  const child = spawn(process.execPath, [HERE, '--serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = await new Promise<string>((ok, fail) => {
    createInterface({ input: child.stdout! }).once('line', ok);
    child.once('exit', (c) => fail(new Error(`steering child exited with ${c}`)));
  });
  const { publicUrl } = JSON.parse(first) as { publicUrl: string };
  const files = ['seg_180p_000.m4s', 'seg_180p_001.m4s', 'seg_180p_002.m4s', 'seg_180p_003.m4s', 'init_180p.mp4'];
  const rows: Row[] = [];
  try {
    rows.push(await load('locate', publicUrl, files.map((f) => ({ method: 'GET', path: `/v1/locate/bbb-seg/${f}` }))));
    rows.push(await load('steer', `${publicUrl}/v1/steer/bbb-hls.json?_HLS_pathway=edge-a1&_HLS_throughput=1000000`));
    rows.push(await load('play-mv', `${publicUrl}/v1/play/bbb-hls/master.m3u8`));
    rows.push(await load('play-media', `${publicUrl}/v1/play/bbb-seg/index_180p.m3u8?pathway=edge-a1`));
  } finally {
    child.kill('SIGTERM');
  }
  process.stdout.write(`steering on loopback, ${CONNECTIONS} connections, ${DURATION}s per workload (autocannon in this process, steering in a child)\n`);
  process.stdout.write('workload      decisions/s   p50 ms   p99 ms   non-2xx  errors\n');
  for (const r of rows) {
    process.stdout.write(
      `${r.name.padEnd(12)} ${String(r.reqPerSec).padStart(12)} ${String(r.p50).padStart(8)} ${String(r.p99).padStart(8)} ${String(r.non2xx).padStart(9)} ${String(r.errors).padStart(7)}\n`,
    );
  }
  const p = runPrefixBench();
  process.stdout.write(
    `prefix table: ${p.prefixes} prefixes built in ${p.buildMs} ms; lookups/s mixed ${p.lookupsPerSec.toLocaleString('en')}, ` +
      `IPv4 ${p.v4LookupsPerSec.toLocaleString('en')}, IPv6 ${p.v6LookupsPerSec.toLocaleString('en')}\n`,
  );
}

runBench(serve, main);
