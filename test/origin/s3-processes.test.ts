import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadClusterFile } from '../../src/common/config.js';
import { originStorage } from '../../src/origin/storage/open-storage.js';
import { TEST_ADMIN_TOKEN, tempDir } from '../helpers/cluster.js';
import { deadPort } from '../helpers/http-tools.js';
import { FIXTURES } from '../helpers/origin-harness.js';
import { rawRequest, signedForOrigin } from '../helpers/origin-http.js';
import { CLI, killAll, spawnRole } from '../helpers/role-proc.js';
import { type TestS3, startTestS3 } from '../helpers/s3-server.js';

/**
 * The real `reelcdn ingest` and `reelcdn origin` processes on an S3 bucket: credentials reach them
 * only through the standard AWS environment variables, an ingest exits when done (the S3 client's
 * idle connections do not hold it), and the origin serves what it wrote.
 */

const SIGNING = { keys: { k1: 'origin-s3-k1-0123456789abcdef' }, activeKey: 'k1' };
const FILE = 'stream_360p.mp4';
const AWS_ENV = { AWS_ACCESS_KEY_ID: 'reelcdn-test', AWS_SECRET_ACCESS_KEY: 'reelcdn-test', AWS_REGION: '', AWS_PROFILE: '' };

let s3: TestS3;
beforeAll(async () => {
  s3 = await startTestS3();
});
afterAll(async () => {
  await s3?.close();
});
afterEach(() => killAll());

async function clusterFile(prefix: string): Promise<{ file: string; publicUrl: string }> {
  const [pub, adm] = [await deadPort(), await deadPort()];
  const raw = {
    signing: SIGNING,
    origin: {
      url: `http://127.0.0.1:${pub}`,
      adminUrl: `http://127.0.0.1:${adm}`,
      dataDir: 'origin-local',
      storage: { kind: 's3', endpoint: s3.endpoint, bucket: s3.bucket, region: 'us-east-1', prefix, forcePathStyle: true },
    },
    steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
    isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/8'] }],
    edges: [{ id: 'edge-a1', isp: 'isp-a', url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'edge', diskBytes: 1e9, memoryBytes: 1e7 }],
    log: { level: 'info' },
  };
  const file = join(tempDir('reelcdn-origin-s3-'), 'cluster.json');
  writeFileSync(file, JSON.stringify(raw), { mode: 0o600 });
  return { file, publicUrl: raw.origin.url };
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...AWS_ENV }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('reelcdn processes on S3', () => {
  it('itIngestsWithTheCliAndServesFromARealOriginProcess', async () => {
    const { file, publicUrl } = await clusterFile('cli-a/');
    const ingest = await cli(['ingest', '--config', file, '--title', 'movie', join(FIXTURES, 'hls-bytes')]);
    expect(ingest.stderr).toBe('');
    expect([ingest.code, ingest.stdout]).toEqual([0, expect.stringMatching(/^ingested movie \(version v\d{8}T\d{9}Z-[0-9a-f]{8}\): 5 files, \d+ bytes\n$/)]);

    // In the bucket, under the prefix: nothing in the local data folder but this replica's own state.
    const stored = originStorage(loadClusterFile(file).origin);
    expect(await stored.stat('catalog.json')).toBeDefined();
    expect((await stored.list('titles/movie/')).length).toBe(1);

    await spawnRole(['origin', '--config', file], { env: { ...AWS_ENV, REELCDN_ADMIN_TOKEN: TEST_ADMIN_TOKEN }, readyMsg: 'origin listening' });
    const r = await rawRequest(publicUrl, signedForOrigin(SIGNING, `/o/movie/${FILE}`), { headers: { range: 'bytes=100-199' } });
    expect(r.status).toBe(206);
    expect(r.body.equals(readFileSync(join(FIXTURES, 'hls-bytes', FILE)).subarray(100, 200))).toBe(true);
  });

  it('itRefusesASecondIngestInOneLineWhileTheLockIsHeld', async () => {
    const { file } = await clusterFile('cli-b/');
    const release = await originStorage(loadClusterFile(file).origin).lock('.ingest.lock', 'another ingest into this origin');
    try {
      const r = await cli(['ingest', '--config', file, '--title', 'movie', join(FIXTURES, 'dash')]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/another ingest into this origin is already running \(.*lease until/);
    } finally {
      await release();
    }
  });
});
