import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Clock } from '../../src/common/clock.js';
import { type ClusterConfig, validateCluster } from '../../src/common/config.js';
import { type OriginServer, createOriginServer } from '../../src/origin/server.js';
import { signedForOrigin } from './origin-http.js';

export const ORIGIN_ADMIN_TOKEN = 'origin-test-admin-token';

/** The committed media fixtures (scripts/make-fixtures.sh). */
export const FIXTURES = resolve(import.meta.dirname, '..', 'fixtures', 'media');

export function originTempDir(prefix = 'reelcdn-origin-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A validated cluster whose origin dataDir is a fresh temp folder. */
export function originTestConfig(admin: { openHealth?: boolean; openMetrics?: boolean } = {}): ClusterConfig {
  const base = originTempDir();
  return validateCluster(
    {
      signing: { keys: { k1: 'origin-test-secret-0123456789' }, activeKey: 'k1' },
      origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'origin' },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
      edges: [
        {
          id: 'edge-a1',
          isp: 'isp-a',
          url: 'http://127.0.0.1:1',
          adminUrl: 'http://127.0.0.1:1',
          dataDir: 'edge-a1',
          diskBytes: 1e8,
          memoryBytes: 1e7,
        },
      ],
      admin,
      log: { level: 'silent' },
    },
    base,
  );
}

/** A copy of a fixture title in a temp folder, safe to break. */
export function copyFixture(name: string): string {
  const dest = join(originTempDir('reelcdn-src-'), name);
  cpSync(join(FIXTURES, name), dest, { recursive: true });
  return dest;
}

/** A copy of a fixture title with `edit` applied to one of its files (a manifest, usually). */
export function editedFixture(name: string, file: string, edit: (text: string) => string): string {
  const dir = copyFixture(name);
  const p = join(dir, file);
  writeFileSync(p, edit(readFileSync(p, 'utf8')));
  return dir;
}

/** What an ingest was refused with; a test fails here if it was accepted. */
export async function refusal(p: Promise<unknown>): Promise<Error & { userFacing?: boolean }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { userFacing?: boolean };
  }
  throw new Error('expected the ingest to be refused');
}

export interface RunningOrigin {
  server: OriginServer;
  publicUrl: string;
  adminUrl: string;
  /** `path` with the token an edge would put on it (/o/ serves edges only). */
  signed(path: string): string;
  close(): Promise<void>;
}

/** A real origin on 127.0.0.1, ephemeral ports, silent logs, its own metrics registry. */
export async function startTestOrigin(
  config: ClusterConfig,
  opts: { clock?: Clock; playFlushMs?: number; /** 0 (default): reload only when told or when a file is missing. */ catalogPollMs?: number } = {},
): Promise<RunningOrigin> {
  const server = createOriginServer({
    config,
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
    clock: opts.clock,
    adminToken: ORIGIN_ADMIN_TOKEN,
    catalogPollMs: opts.catalogPollMs ?? 0,
    playFlushMs: opts.playFlushMs ?? 10,
    listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
  });
  const { publicUrl, adminUrl } = await server.start();
  return { server, publicUrl, adminUrl, signed: (path) => signedForOrigin(config.signing, path), close: () => server.close() };
}

export const authHeader = { authorization: `Bearer ${ORIGIN_ADMIN_TOKEN}` };
