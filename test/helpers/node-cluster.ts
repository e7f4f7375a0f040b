import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import type { NodeHealth } from '../../src/edge/cluster/node-health.js';
import { TEST_ADMIN_TOKEN, TEST_KEYS, tempDir } from './cluster.js';
import { type RoleProc, spawnRole, until } from './role-proc.js';

/**
 * An edge node as deployed, for tests that spawn `reelcdn edge` (dist/): a cluster file with one
 * edge (edge-a1 of isp-a, loopback, signing not required) in front of a test origin, the process
 * started from it, its workers as asked, and its admin port (/health, until its workers are up).
 */

/** The edge every cluster file written here has. */
export const NODE_EDGE_ID = 'edge-a1';

/**
 * What such a cluster file holds, to edit before writing it. `edge`: fields of the edge over the
 * defaults (100 MB disk, 20 MB memory, 64 KiB slices); `root`: top-level fields over the
 * defaults (e.g. `admin: { openHealth: true, openMetrics: true }`, or a `signing` or `steering`
 * of its own).
 */
export function nodeClusterRaw(originUrl: string, edge: Record<string, unknown> = {}, root: Record<string, unknown> = {}): Record<string, any> {
  return {
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
  };
}

/**
 * Writes `raw` to `file` (by default cluster.json in a new temporary folder) and returns its path.
 * Owner-only: a file with inline keys readable by others is warned about on every load.
 */
export function writeClusterFile(raw: Record<string, unknown>, file = join(tempDir(), 'cluster.json')): string {
  writeFileSync(file, JSON.stringify(raw), { mode: 0o600 });
  return file;
}

/** Writes nodeClusterRaw(...) in a new temporary folder and returns its path. */
export function clusterFileForNode(originUrl: string, edge: Record<string, unknown> = {}, root: Record<string, unknown> = {}): string {
  return writeClusterFile(nodeClusterRaw(originUrl, edge, root));
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

/** A node's admin port, and the CA to trust when it serves https. */
export interface NodeAdmin {
  adminUrl: string;
  ca?: Buffer;
}

/** The body of `method` `path` on the node's admin port, with the test admin token. */
export async function nodeAdmin(node: NodeAdmin, path: string, method: 'GET' | 'POST' = 'GET'): Promise<string> {
  const dispatcher = node.ca ? new Agent({ connect: { ca: node.ca } }) : undefined;
  try {
    return await (await request(`${node.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }, dispatcher })).body.text();
  } finally {
    await dispatcher?.close();
  }
}

/** The node's /health. */
export async function nodeHealth(node: NodeAdmin): Promise<NodeHealth> {
  return JSON.parse(await nodeAdmin(node, '/health')) as NodeHealth;
}

/** Resolves with the node's /health once it has `workers` workers (default two), every one ok. */
export async function untilWorkersUp(node: NodeAdmin, workers = 2): Promise<NodeHealth> {
  return until(`${workers} workers up`, async () => {
    const h = await nodeHealth(node);
    return h.workers.length === workers && h.workers.every((w) => w.status === 'ok') ? h : undefined;
  });
}
