import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadClusterFile } from '../../src/common/config.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { makeTestPki } from '../helpers/certs.js';
import { TEST_ADMIN_TOKEN, tempDir } from '../helpers/cluster.js';
import { deadPort } from '../helpers/http-tools.js';
import { FIXTURES } from '../helpers/origin-harness.js';
import { CLI, type RoleProc, killAll, spawnRole } from '../helpers/role-proc.js';

/**
 * `reelcdn reload` against a real `reelcdn origin` (over https, with the cluster's CA): the
 * outcome printed, exit 0 when applied, exit 1 with the field when the process refuses the file
 * (what `kill -HUP` cannot report), and when a process cannot be reached.
 */

function reelcdn(args: string[], token = TEST_ADMIN_TOKEN): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, REELCDN_ADMIN_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (err += c));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, out, err })));
}

describe('reelcdn reload', () => {
  const dir = tempDir('reelcdn-reload-cli-');
  const pki = makeTestPki(dir, ['origin']);
  const file = join(dir, 'cluster.json');
  let raw: Record<string, any>;
  let origin: RoleProc;
  const write = () => writeFileSync(file, JSON.stringify(raw), { mode: 0o600 });

  beforeAll(async () => {
    const [pub, adm, edgePort] = [await deadPort(), await deadPort(), await deadPort()];
    raw = {
      signing: { keys: { k1: 'reload-cli-k1-0123456789abcdef' }, activeKey: 'k1' },
      origin: { url: `https://127.0.0.1:${pub}`, adminUrl: `https://127.0.0.1:${adm}`, dataDir: 'origin', tls: pki.tls('origin') },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/8'] }],
      edges: [{ id: 'edge-a1', isp: 'isp-a', url: `http://127.0.0.1:${edgePort}`, adminUrl: `http://127.0.0.1:${edgePort}`, dataDir: 'edge', diskBytes: 1e9, memoryBytes: 1e7 }],
      log: { level: 'info' },
    };
    write();
    await ingestTitle(loadClusterFile(file), 'movie', join(FIXTURES, 'hls-bytes'));
    ({ proc: origin } = await spawnRole(['origin', '--config', file], { env: { REELCDN_ADMIN_TOKEN: TEST_ADMIN_TOKEN }, readyMsg: 'origin listening' }));
  });
  afterAll(() => killAll());

  it('printsWhatTheProcessAppliedAndExitsZero', async () => {
    raw.signing.keys.k2 = 'reload-cli-k2-0123456789abcdef';
    write();
    const r = await reelcdn(['reload', '--config', file, '--role', 'origin']);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toBe(`origin (${raw.origin.adminUrl}): applied signing\n`);
    expect(await reelcdn(['reload', '--config', file, '--role', 'origin'])).toMatchObject({ code: 0, out: `origin (${raw.origin.adminUrl}): nothing it uses changed\n` });
  });

  it('printsTheRefusalWithItsFieldAndExitsOneWhenTheProcessRefusesTheFile', async () => {
    // The file itself is fine here; the origin refuses the certificate when it reads it.
    const weak = pki.issue('weak', { keyType: 'rsa', rsaBits: 512 });
    raw.origin.tls = { ...pki.tls('origin'), certFile: weak.certFile, keyFile: weak.keyFile };
    write();
    const r = await reelcdn(['reload', '--config', file, '--role', 'origin']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^origin \(https:\/\/127\.0\.0\.1:\d+\): refused the file: origin\.tls\.(certFile|keyFile): .*weak.*; still running the previous one\n$/);
    raw.origin.tls = pki.tls('origin');
    write();
  });

  it('stopsAtTheFirstProcessThatDoesNotTakeItAndSaysWhichWereNotAsked', async () => {
    // --all asks the edges first: edge-a1 is not running.
    const r = await reelcdn(['reload', '--config', file, '--all']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^edge-a1 \(http:\/\/127\.0\.0\.1:\d+\): cannot be reached \(ECONNREFUSED\)\nnot asked: origin, steering\n$/);
    expect((await reelcdn(['reload', '--config', file, '--role', 'origin'], 'wrong-token')).out).toMatch(/refused the admin token \(HTTP 401\)/);
  });

  it('refusesAnUnclearCommandLine', async () => {
    for (const args of [[], ['--role', 'cdn'], ['--role', 'origin', '--id', 'edge-a1'], ['--all', '--role', 'edge']]) {
      const r = await reelcdn(['reload', '--config', file, ...args]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/^reelcdn: (reload needs --role|--role must be|--id is for|reload takes --all or --role)/);
    }
    expect(origin.child.exitCode).toBe(null);
  });
});
