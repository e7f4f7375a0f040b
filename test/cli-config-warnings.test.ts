import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/cluster.js';
import { CLI, ensureBuilt } from './helpers/cluster-procs.js';

const SECRET = 'k1-secret-0123456789abcdef';

function clusterWithInlineKeys(mode: number): string {
  const file = join(tempDir(), 'cluster.json');
  writeFileSync(
    file,
    JSON.stringify({
      signing: { keys: { k1: SECRET }, activeKey: 'k1' },
      origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'o' },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
      edges: [{ id: 'edge-a1', isp: 'isp-a', url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'e', diskBytes: 1e6, memoryBytes: 1e6 }],
    }),
  );
  chmodSync(file, mode);
  return file;
}

/** `reelcdn fill` without --now loads the cluster file, then stops with a usage error: a cheap start. */
function startAndStop(file: string): { stdout: string; stderr: string } {
  ensureBuilt();
  const r = spawnSync(process.execPath, [CLI, 'fill', '--config', file, '--id', 'edge-a1'], { encoding: 'utf8', timeout: 20_000 });
  return { stdout: r.stdout, stderr: r.stderr };
}

describe('reelcdn and a cluster file with inline signing keys', () => {
  it('logs a warning line at start when the file is readable by group or others', () => {
    const file = clusterWithInlineKeys(0o644);
    const { stdout } = startAndStop(file);
    const warnings = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0].msg).toContain(file);
    expect(warnings[0].msg).toMatch(/signing\.keysFile/);
    expect(warnings[0].node).toBe('edge-a1');
    expect(stdout).not.toContain(SECRET);
  });

  it('says nothing when only the owner can read it', () => {
    const { stdout } = startAndStop(clusterWithInlineKeys(0o600));
    expect(stdout).toBe('');
  });
});
