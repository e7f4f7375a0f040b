/**
 * `npm run bench:steering-mpd` — what one DASH play of a long title costs steering.
 *
 * A child process runs a real origin holding a 2 h, 6-rendition title (2 s segments: 21,600
 * segment references, SegmentTimeline templates that steering expands into signed
 * SegmentLists), fake edge /health servers and a real steering server; this process plays the
 * title one play at a time. The catalog entry is written by hand (only the MPD exists on disk:
 * steering never fetches segments).
 *
 * Prints: the first play (expansion and signing, chunked), warm plays (wall time, and the
 * child's CPU time per play and longest event-loop block while they ran: what a play costs
 * steering), `renderMpd` alone, and the whole rewrite without the cache (what every play did
 * before, in one synchronous block).
 * Knobs: BENCH_PLAYS (default 200), BENCH_HOURS (default 2), BENCH_RENDITIONS (default 6).
 * Measures, asserts nothing.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { request } from 'undici';
import { signQuery } from '../src/common/signing.js';
import { planMpd, renderMpd, rewriteMpd, signMpd } from '../src/steering/dash-rewrite.js';
import { longMpd } from './long-mpd.js';
import { runBench, serveSteeringCluster } from './steering-cluster.js';

const TOKEN = 'bench-admin-token';
const HERE = fileURLToPath(import.meta.url);
const PLAYS = Number(process.env.BENCH_PLAYS ?? 200);
const HOURS = Number(process.env.BENCH_HOURS ?? 2);
const RENDITIONS = Number(process.env.BENCH_RENDITIONS ?? 6);
const KEYS = { k1: 'bench-secret-0123456789abcdef' };

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const ms = (x: number) => x.toFixed(1).padStart(8);

/** Child: origin + fake edges + steering. Prints its URL; on stdin `mark` / `report`, measures itself. */
async function serve(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'reelcdn-bench-mpd-'));
  const logger = pino({ level: 'silent' });
  const mpd = longMpd({ seconds: HOURS * 3600, renditions: RENDITIONS });
  const segments = Math.ceil((HOURS * 3600) / 2);

  // The title: the MPD on disk, every other file only in the catalog.
  const dataDir = join(base, 'origin');
  mkdirSync(join(dataDir, 'titles', 'long'), { recursive: true });
  writeFileSync(join(dataDir, 'titles', 'long', 'manifest.mpd'), mpd);
  const fake = '0'.repeat(64);
  const files = [{ path: 'manifest.mpd', size: Buffer.byteLength(mpd), sha256: createHash('sha256').update(mpd).digest('hex'), contentType: 'application/dash+xml' }];
  for (let r = 0; r < RENDITIONS; r++) {
    files.push({ path: `init-${r}.m4s`, size: 1000, sha256: fake, contentType: 'video/mp4' });
    for (let n = 1; n <= segments; n++) {
      files.push({ path: `chunk-${r}-${String(n).padStart(5, '0')}.m4s`, size: 1000, sha256: fake, contentType: 'video/iso.segment' });
    }
  }
  files.sort((a, b) => (a.path < b.path ? -1 : 1));
  const bytes = files.reduce((n, f) => n + f.size, 0);
  writeFileSync(join(dataDir, 'catalog.json'), JSON.stringify({ version: 1, titles: [{ title: 'long', kind: 'dash', manifests: ['manifest.mpd'], files, bytes, ingestedAt: new Date().toISOString() }] }));

  const {
    urls: { publicUrl },
    close,
  } = await serveSteeringCluster({
    base,
    logger,
    adminToken: TOKEN,
    edgeIds: ['edge-a1', 'edge-a2', 'edge-b1'],
    cluster: { keys: KEYS, steering: { healthIntervalMs: 500 }, ispOf: () => 'isp-a' },
  });

  const loop = monitorEventLoopDelay({ resolution: 1 });
  let cpu = process.cpuUsage();
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'mark') {
      cpu = process.cpuUsage();
      loop.reset();
      loop.enable();
    } else if (line === 'report') {
      loop.disable();
      const d = process.cpuUsage(cpu);
      process.stdout.write(`${JSON.stringify({ cpuMs: (d.user + d.system) / 1000, loopMaxMs: loop.max / 1e6 })}\n`);
    } else if (line === 'stop') {
      void close().then(() => process.exit(0));
    }
  });
  process.stdout.write(`${JSON.stringify({ publicUrl, segments: segments * RENDITIONS, mpdBytes: mpd.length })}\n`);
}

async function main(): Promise<void> {
  const child = spawn(process.execPath, [HERE, '--serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async <T>() => JSON.parse((await lines.next()).value as string) as T;
  type Stats = { cpuMs: number; loopMaxMs: number };
  const tell = (cmd: string) => child.stdin!.write(`${cmd}\n`);
  const { publicUrl, segments, mpdBytes } = await next<{ publicUrl: string; segments: number; mpdBytes: number }>();
  const play = async () => {
    const t0 = performance.now();
    const res = await request(`${publicUrl}/v1/play/long/manifest.mpd`);
    const body = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`play answered ${res.statusCode}: ${body.slice(0, 200)}`);
    return { ms: performance.now() - t0, bytes: body.length };
  };
  try {
    tell('mark');
    const cold = await play();
    tell('report');
    const coldStats = await next<Stats>();
    tell('mark');
    const warm: number[] = [];
    let size = 0;
    for (let i = 0; i < PLAYS; i++) {
      const p = await play();
      warm.push(p.ms);
      size = p.bytes;
    }
    tell('report');
    const warmStats = await next<Stats>();

    // The pieces alone, in this process.
    const mpd = longMpd({ seconds: HOURS * 3600, renditions: RENDITIONS });
    const sec = Math.floor(Date.now() / 1000);
    const sign = (f: string) => signQuery(KEYS, 'k1', `/c/long/${f}`, sec, 21600);
    const plan = planMpd(mpd, { title: 'long', manifest: 'manifest.mpd' });
    const signed = await signMpd(plan, sign);
    const ranked = [1, 2, 3].map((i) => ({ id: `edge-${i}`, url: `http://127.0.0.1:${8100 + i}` }));
    const render: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      renderMpd(signed, { edges: ranked, steeringUri: `${publicUrl}/v1/steer/long.json`, query: `&tp=00-${i.toString(16).padStart(32, '0')}-0000000000000001-01` });
      render.push(performance.now() - t0);
    }
    const t0 = performance.now();
    rewriteMpd(mpd, { title: 'long', manifest: 'manifest.mpd', edges: ranked, steeringUri: 'x', signedQuery: sign });
    const whole = performance.now() - t0;

    process.stdout.write(
      `DASH play of a ${HOURS} h, ${RENDITIONS}-rendition title (${segments.toLocaleString('en')} segments, MPD ${(mpdBytes / 1024).toFixed(1)} KB in, ${(size / 1e6).toFixed(1)} MB out)\n`,
    );
    process.stdout.write(`first play (expand + sign)     wall ${ms(cold.ms)} ms   steering CPU ${ms(coldStats.cpuMs)} ms   longest loop block ${ms(coldStats.loopMaxMs)} ms\n`);
    process.stdout.write(
      `warm play, ${PLAYS} one at a time  wall p50 ${ms(pct(warm, 50))} ms p99 ${ms(pct(warm, 99))} ms   steering CPU ${ms(warmStats.cpuMs / PLAYS)} ms/play   longest loop block ${ms(warmStats.loopMaxMs)} ms\n`,
    );
    process.stdout.write(`renderMpd alone (per play)     p50 ${ms(pct(render, 50))} ms   p99 ${ms(pct(render, 99))} ms\n`);
    process.stdout.write(`whole rewrite, no cache        ${ms(whole)} ms (one synchronous block; before the cache, every play did this)\n`);
  } finally {
    tell('stop');
  }
}

runBench(serve, main);
