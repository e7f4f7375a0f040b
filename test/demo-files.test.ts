import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadClusterFile } from '../src/common/config.js';
import { DEMO_KEYS_FILE, writeDemoFiles } from '../src/demo.js';
import { tempDir } from './helpers/cluster.js';

const modeOf = (path: string) => statSync(path).mode & 0o777;

describe('reelcdn demo files', () => {
  it('writes its cluster file and its signing keys readable by their owner only', () => {
    const dir = tempDir();
    const clusterFile = writeDemoFiles(dir, 7000);
    expect(clusterFile).toBe(join(dir, 'cluster.json'));
    expect(modeOf(clusterFile)).toBe(0o600);
    expect(modeOf(join(dir, DEMO_KEYS_FILE))).toBe(0o600);
  });

  it('keeps the secrets out of the cluster file, in a keys file it names', () => {
    const dir = tempDir();
    const clusterFile = writeDemoFiles(dir, 7000);
    const raw = JSON.parse(readFileSync(clusterFile, 'utf8'));
    expect(raw.signing.keys).toBeUndefined();
    expect(raw.signing.keysFile).toBe(DEMO_KEYS_FILE);
    const c = loadClusterFile(clusterFile);
    const secret = c.signing.keys[c.signing.activeKey]!;
    expect(secret.length).toBeGreaterThanOrEqual(16);
    expect(readFileSync(clusterFile, 'utf8')).not.toContain(secret);
    expect(c.warnings).toEqual([]);
  });

  it('leaves an existing demo cluster (and its keys) as they are on a re-run', () => {
    const dir = tempDir();
    const clusterFile = writeDemoFiles(dir, 7000);
    const keys = readFileSync(join(dir, DEMO_KEYS_FILE), 'utf8');
    writeDemoFiles(dir, 9000);
    expect(readFileSync(join(dir, DEMO_KEYS_FILE), 'utf8')).toBe(keys);
    expect(loadClusterFile(clusterFile).origin.url).toBe('http://127.0.0.1:7000');
  });

  it('replaces a stale keys file left without a cluster file, and not in its old mode', () => {
    const dir = tempDir();
    writeFileSync(join(dir, DEMO_KEYS_FILE), '{"k1":"left-over-secret-0123456789"}', { mode: 0o644 });
    writeDemoFiles(dir, 7000);
    expect(modeOf(join(dir, DEMO_KEYS_FILE))).toBe(0o600);
    expect(readFileSync(join(dir, DEMO_KEYS_FILE), 'utf8')).not.toContain('left-over');
  });
});
