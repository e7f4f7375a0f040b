import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { chooseEdgeId, findEdgeBy } from '../src/cli/edge-id.js';
import { ConfigError } from '../src/common/config.js';
import { testCluster, tempDir, TEST_KEYS } from './helpers/cluster.js';
import { CLI } from './helpers/role-proc.js';

describe('which edge a process is (reelcdn edge)', () => {
  it('takes --id, else --id-from-hostname (the first label), else REELCDN_EDGE_ID', () => {
    const env = { REELCDN_EDGE_ID: 'from-env' };
    expect(chooseEdgeId({ id: 'edge-a1' }, env, 'host')).toEqual({ ok: true, id: 'edge-a1', source: '--id' });
    expect(chooseEdgeId({ 'id-from-hostname': true }, env, 'reelcdn-edge-a-0')).toEqual({ ok: true, id: 'reelcdn-edge-a-0', source: '--id-from-hostname (hostname "reelcdn-edge-a-0")' });
    // setHostnameAsFQDN: the pod's name is still the first label.
    expect(chooseEdgeId({ 'id-from-hostname': true }, {}, 'reelcdn-edge-a-0.reelcdn-edge.reelcdn.svc.cluster.local')).toMatchObject({ ok: true, id: 'reelcdn-edge-a-0' });
    expect(chooseEdgeId({}, env, 'host')).toEqual({ ok: true, id: 'from-env', source: 'REELCDN_EDGE_ID' });
  });

  it('refuses both flags, an empty hostname, and nothing at all', () => {
    expect(chooseEdgeId({ id: 'a', 'id-from-hostname': true }, {}, 'h')).toEqual({ ok: false, problem: 'takes --id or --id-from-hostname, not both' });
    expect(chooseEdgeId({ 'id-from-hostname': true }, {}, '')).toMatchObject({ ok: false });
    expect(chooseEdgeId({}, { REELCDN_EDGE_ID: '' }, 'h')).toEqual({ ok: false, problem: 'needs --id EDGE_ID (or --id-from-hostname, or REELCDN_EDGE_ID in the environment)' });
  });

  it('an id that is not an edge names where it came from and the edges there are', () => {
    const cfg = testCluster();
    expect(findEdgeBy(cfg, 'edge-a1', 'REELCDN_EDGE_ID').id).toBe('edge-a1');
    expect(() => findEdgeBy(cfg, 'nope', 'REELCDN_EDGE_ID')).toThrow(new ConfigError('REELCDN_EDGE_ID', `"nope" is not an edge in the cluster file (${cfg.edges.map((e) => e.id).join(', ')})`));
  });

  it('the CLI says so in one line, exit 2', async () => {
    const dir = tempDir();
    const file = join(dir, 'cluster.json');
    writeFileSync(
      file,
      JSON.stringify({
        signing: { keys: TEST_KEYS, activeKey: 'k1' },
        origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:2', dataDir: 'origin' },
        steering: { url: 'http://127.0.0.1:3', adminUrl: 'http://127.0.0.1:4' },
        isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/8'] }],
        edges: [{ id: 'edge-a1', isp: 'isp-a', url: 'http://127.0.0.1:5', adminUrl: 'http://127.0.0.1:6', dataDir: 'edge', diskBytes: 1e6, memoryBytes: 1e6 }],
      }),
      { mode: 0o600 },
    );
    const run = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
      try {
        await promisify(execFile)(process.execPath, [CLI, 'edge', '--config', file, ...args], { env: { ...process.env, REELCDN_EDGE_ID: '', ...env } });
        return { code: 0, stderr: '' };
      } catch (err) {
        const e = err as { code: number; stderr: string };
        return { code: e.code, stderr: e.stderr };
      }
    };
    const fromHost = await run(['--id-from-hostname']);
    expect(fromHost.code).toBe(2);
    expect(fromHost.stderr).toBe(`reelcdn: config error: --id-from-hostname (hostname "${hostname()}"): "${hostname().split('.')[0]}" is not an edge in the cluster file (edge-a1)\n`);
    const fromEnv = await run([], { REELCDN_EDGE_ID: 'edge-zz' });
    expect(fromEnv.stderr).toBe('reelcdn: config error: REELCDN_EDGE_ID: "edge-zz" is not an edge in the cluster file (edge-a1)\n');
    const none = await run([]);
    expect(none.code).toBe(2);
    expect(none.stderr.split('\n')[0]).toBe('reelcdn: edge needs --id EDGE_ID (or --id-from-hostname, or REELCDN_EDGE_ID in the environment)');
    const both = await run(['--id', 'edge-a1', '--id-from-hostname']);
    expect(both.stderr.split('\n')[0]).toBe('reelcdn: edge takes --id or --id-from-hostname, not both');
  });
});
