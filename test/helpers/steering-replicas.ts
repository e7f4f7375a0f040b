import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import { Catalog, saveCatalog } from '../../src/origin/catalog.js';

/**
 * Steering replicas as deployed: `reelcdn steering` processes from dist/ on one cluster file,
 * each on its own loopback ports, and a catalog of many titles that steering only lists.
 */

const CLI = resolve(import.meta.dirname, '..', '..', 'dist', 'src', 'cli.js');

/** A free loopback port (closed again: the child binds it). */
export async function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

/** `count` title ids: title-0000, title-0001, … */
export function listedTitles(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `title-${String(i).padStart(4, '0')}`);
}

/** Lists `titles` in the origin catalog under `originDir`, one 10-byte master.m3u8 each (steering only lists them, never fetches). */
export async function saveListedTitles(originDir: string, titles: readonly string[]): Promise<void> {
  const sha = 'a'.repeat(64);
  mkdirSync(originDir, { recursive: true });
  await saveCatalog(
    originDir,
    new Catalog(
      titles.map((title) => ({
        title,
        kind: 'hls' as const,
        manifests: ['master.m3u8'],
        files: [{ path: 'master.m3u8', size: 10, sha256: sha, contentType: 'application/vnd.apple.mpegurl' }],
        bytes: 10,
        ingestedAt: new Date(0).toISOString(),
      })),
    ),
  );
}

export interface SteeringReplica {
  base: string;
  admin: string;
  proc: ChildProcess;
}

export interface SteeringReplicas {
  replicas: SteeringReplica[];
  /** Starts one more on the same file (a replica started late); resolves once it steers `readyTitle` to every edge. */
  add(): Promise<SteeringReplica>;
  /** SIGTERM to every replica, resolved once all exited. */
  stop(): Promise<void>;
}

/**
 * Starts `n` steering processes on cluster file `file` (admin token `token`) and resolves once
 * each steers `readyTitle` to all `edgeCount` edges: up, catalog loaded, every edge polled.
 */
export async function startSteeringReplicas(
  file: string,
  n: number,
  opts: { token: string; readyTitle: string; edgeCount: number; timeoutMs?: number },
): Promise<SteeringReplicas> {
  if (!existsSync(CLI)) throw new Error('dist/ is missing: npm test builds it before vitest');
  const replicas: SteeringReplica[] = [];
  const spawnOne = async (): Promise<SteeringReplica> => {
    const [p, a] = [await freePort(), await freePort()];
    const proc = spawn(process.execPath, [CLI, 'steering', '--config', file, '--listen', `127.0.0.1:${p}`, '--admin-listen', `127.0.0.1:${a}`], {
      env: { ...process.env, REELCDN_ADMIN_TOKEN: opts.token },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const r = { base: `http://127.0.0.1:${p}`, admin: `http://127.0.0.1:${a}`, proc };
    replicas.push(r);
    return r;
  };
  const add = async (): Promise<SteeringReplica> => {
    const r = await spawnOne();
    await ready(r.base);
    return r;
  };
  const ready = async (base: string) => {
    const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
    for (;;) {
      try {
        const res = await request(`${base}/v1/steer/${opts.readyTitle}.json`);
        const body = (await res.body.json()) as { 'PATHWAY-PRIORITY'?: string[] };
        if (body['PATHWAY-PRIORITY']?.length === opts.edgeCount) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`steering at ${base} did not come up with every edge`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const stop = async () => {
    for (const r of replicas) r.proc.kill('SIGTERM');
    await Promise.all(replicas.map((r) => new Promise((res) => (r.proc.exitCode !== null ? res(null) : r.proc.once('exit', res)))));
  };
  try {
    // Spawned one after the other (their ports picked in turn), waited for together.
    for (let i = 0; i < n; i++) await spawnOne();
    await Promise.all(replicas.map((r) => ready(r.base)));
  } catch (err) {
    await stop();
    throw err;
  }
  return { replicas, add, stop };
}
