import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { type ClusterConfig, validateCluster } from '../../src/common/config.js';
import { seededBytes } from '../../bench/seeded-random.js';

export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789';
export const TEST_KEYS = { k1: 'k1-secret-0123456789abcdef', k2: 'k2-secret-0123456789abcdef' };

export function tempDir(prefix = 'reelcdn-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A validated one-ISP, one-edge cluster in a fresh temp dir, with overrides for the edge. */
export function testCluster(edgeOverrides: Record<string, unknown> = {}, rootOverrides: Record<string, unknown> = {}): ClusterConfig {
  const base = tempDir();
  return validateCluster(
    {
      signing: { keys: TEST_KEYS, activeKey: 'k1', ttlSeconds: 3600 },
      origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'origin' },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
      edges: [
        {
          id: 'edge-a1',
          isp: 'isp-a',
          url: 'http://127.0.0.1:0',
          adminUrl: 'http://127.0.0.1:0',
          dataDir: 'edge-a1',
          diskBytes: 256 * 1024 * 1024,
          memoryBytes: 64 * 1024 * 1024,
          ...edgeOverrides,
        },
      ],
      log: { level: 'silent' },
      ...rootOverrides,
    },
    base,
  );
}

/** Writes `bytes` of deterministic pseudo-random content to root/title/file and returns it. */
export function writeMedia(root: string, title: string, file: string, bytes: number, seed = 1): Buffer {
  const data = seededBytes(bytes, seed);
  const path = join(root, title, file);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, data);
  return data;
}

export function randomTitle(): string {
  return `t-${randomBytes(4).toString('hex')}`;
}
