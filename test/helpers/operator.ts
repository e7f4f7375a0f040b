import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { ADMIN_TOKEN, CLI, type ProcCluster } from './cluster-procs.js';

/**
 * What an operator has of a running proc cluster (cluster-procs.ts): the cluster file as theirs
 * would read — steering's admin URL where it listens (the helper starts steering on port 0) — and
 * the `reelcdn` command with the admin token in its environment.
 */
export function operatorClusterFile(c: ProcCluster): string {
  const raw = JSON.parse(readFileSync(c.clusterFile, 'utf8')) as { steering: { adminUrl: string } };
  raw.steering.adminUrl = c.steeringAdminUrl;
  const file = join(c.dir, 'operator.json');
  writeFileSync(file, JSON.stringify(raw), { mode: 0o600 });
  return file;
}

/** Runs `reelcdn ARGS` (dist/) as an operator would: exit code, stdout, stderr. */
export function reelcdn(args: string[], env: Record<string, string> = { REELCDN_ADMIN_TOKEN: ADMIN_TOKEN }, timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: timeoutMs }, (err, stdout, stderr) => {
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Steering's view of every edge (admin /v1/edges, what `reelcdn status` reads): state, and the edge's last health report. */
export async function steeringEdges(c: ProcCluster): Promise<SteeringEdge[]> {
  const res = await request(`${c.steeringAdminUrl}/v1/edges`, { dispatcher: c.dispatcher, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return ((await res.body.json()) as { edges: SteeringEdge[] }).edges;
}

export interface SteeringEdge {
  id: string;
  state: string;
  health: { hitRatio?: { requests: number; bytes: number } } | null;
}
