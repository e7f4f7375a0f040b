import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TEST_ADMIN_TOKEN, TEST_KEYS, tempDir } from './cluster.js';
import { type RoleProc, spawnRole } from './role-proc.js';

/**
 * An edge node as deployed, for tests that spawn `reelcdn edge` (dist/): a cluster file with one
 * edge (edge-a1 of isp-a, loopback, signing not required) in front of a test origin, and the
 * process started from it, its workers as asked.
 */

/** The edge every cluster file written here has. */
export const NODE_EDGE_ID = 'edge-a1';

/**
 * Writes a cluster file in a new temporary folder and returns its path. `edge`: fields of the
 * edge over the defaults (100 MB disk, 20 MB memory, 64 KiB slices); `root`: top-level fields
 * over the defaults (e.g. `admin: { openHealth: true, openMetrics: true }`).
 */
export function clusterFileForNode(originUrl: string, edge: Record<string, unknown> = {}, root: Record<string, unknown> = {}): string {
  const file = join(tempDir(), 'cluster.json');
  writeFileSync(
    file,
    JSON.stringify({
      signing: { keys: TEST_KEYS, activeKey: 'k1', required: false },
      origin: { url: originUrl, adminUrl: 'http://127.0.0.1:1', dataDir: 'origin' },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/8'] }],
      edges: [
        {
          id: NODE_EDGE_ID,
          isp: 'isp-a',
          url: 'http://127.0.0.1:0',
          adminUrl: 'http://127.0.0.1:0',
          dataDir: 'edge',
          diskBytes: 100_000_000,
          memoryBytes: 20_000_000,
          sliceBytes: 65536,
          ...edge,
        },
      ],
      log: { level: 'info' },
      ...root,
    }),
  );
  return file;
}

export interface EdgeNode {
  proc: RoleProc;
  child: ChildProcess;
  publicUrl: string;
  adminUrl: string;
  /** Resolves with the exit code once the node process exited. */
  exited: Promise<number | null>;
  /** Everything it wrote (stdout and stderr). */
  output(): string;
}

/**
 * Starts `reelcdn edge --config <file> --id edge-a1 ...args` (default two workers) with the test
 * admin token, and resolves once it logs "edge listening". role-proc's killAll() stops it.
 */
export async function startEdgeNode(file: string, args: string[] = ['--workers', '2']): Promise<EdgeNode> {
  const { proc, ready } = await spawnRole(['edge', '--config', file, '--id', NODE_EDGE_ID, ...args], { env: { REELCDN_ADMIN_TOKEN: TEST_ADMIN_TOKEN }, readyMsg: 'edge listening' });
  const child = proc.child;
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve(child.exitCode) : new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { proc, child, publicUrl: String(ready.publicUrl), adminUrl: String(ready.adminUrl), exited, output: () => proc.output() };
}
