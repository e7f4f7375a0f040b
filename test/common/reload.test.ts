import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { type ClusterConfig, ConfigError, loadClusterFile } from '../../src/common/config.js';
import { adminGuard } from '../../src/common/http-app.js';
import { type ReloadOutcome, Reloader, changedFields, onSighup, registerReloadRoute } from '../../src/common/reload.js';
import { tempDir } from '../helpers/cluster.js';

const TOKEN = 'reload-test-admin-token';

function cluster(over: { defaultIsp?: string; healthIntervalMs?: unknown; prefixes?: string[] } = {}) {
  return {
    signing: { keys: { k1: 'reload-test-secret-0123456789' }, activeKey: 'k1' },
    origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'origin' },
    steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', healthIntervalMs: over.healthIntervalMs ?? 500 },
    isps: [{ id: 'isp-a', prefixes: over.prefixes ?? ['127.0.0.0/16'] }],
    edges: [{ id: 'edge-a1', isp: 'isp-a', url: 'http://127.0.0.1:2', adminUrl: 'http://127.0.0.1:3', dataDir: 'e', diskBytes: 1e9, memoryBytes: 1e8 }],
    log: { level: 'silent' },
  };
}

/** A role as the reloader sees it: the config it runs on, swapped by apply. */
function world() {
  const dir = tempDir('reelcdn-reload-');
  const file = join(dir, 'cluster.json');
  const write = (text: string) => writeFileSync(file, text, { mode: 0o600 });
  write(JSON.stringify(cluster()));
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const state = { config: loadClusterFile(file), applies: 0 };
  const apply = async (next: ClusterConfig): Promise<ReloadOutcome> => {
    state.applies++;
    const applied = changedFields(state.config, next, { isps: (c) => c.isps, 'steering.healthIntervalMs': (c) => c.steering.healthIntervalMs });
    state.config = next;
    return { applied, needsRestart: [] };
  };
  return { dir, file, write, lines, logger, state, apply };
}

const errors = (lines: Record<string, unknown>[]) => lines.filter((l) => l.level === 50);

describe('Reloader', () => {
  it('appliesAGoodFileAndTellsWhichFieldsChanged', async () => {
    const w = world();
    const r = new Reloader({ configPath: w.file, logger: w.logger, apply: w.apply });
    w.write(JSON.stringify(cluster({ prefixes: ['127.0.0.0/16', '10.0.0.0/8'] })));
    const result = await r.reload();
    expect(result).toEqual({ ok: true, outcome: { applied: ['isps'], needsRestart: [] } });
    expect(w.state.config.isps[0]!.prefixes).toEqual(['127.0.0.0/16', '10.0.0.0/8']);
    expect(w.lines.some((l) => l.msg === 'reload applied')).toBe(true);
  });

  it('refusesBrokenJsonWithOneErrorLineAndKeepsTheOldConfig', async () => {
    const w = world();
    const before = w.state.config;
    const r = new Reloader({ configPath: w.file, logger: w.logger, apply: w.apply });
    w.write('{ "signing": ');
    const result = await r.reload();
    expect(result.ok).toBe(false);
    expect(w.state.applies).toBe(0);
    expect(w.state.config).toBe(before);
    const errs = errors(w.lines);
    expect(errs).toHaveLength(1);
    expect(errs[0]!.msg).toMatch(/^reload refused: \(cluster file\): .*is not valid JSON.*; still serving the previous configuration$/);
  });

  it('refusesABadFieldNamingIt', async () => {
    const w = world();
    const r = new Reloader({ configPath: w.file, logger: w.logger, apply: w.apply });
    w.write(JSON.stringify(cluster({ healthIntervalMs: -5 })));
    const result = await r.reload();
    expect(result).toMatchObject({ ok: false, kind: 'config', field: 'steering.healthIntervalMs', error: 'steering.healthIntervalMs: must be a positive integer' });
    expect(w.state.config.steering.healthIntervalMs).toBe(500);
    const errs = errors(w.lines);
    expect(errs).toHaveLength(1);
    expect(errs[0]!.msg).toBe('reload refused: steering.healthIntervalMs: must be a positive integer; still serving the previous configuration');
    expect(errs[0]!.field).toBe('steering.healthIntervalMs');
  });

  it('refusesWhatApplyRefuses', async () => {
    // A certificate that does not load is the role's to find: apply throws before it swaps.
    const w = world();
    const r = new Reloader({
      configPath: w.file,
      logger: w.logger,
      apply: async () => {
        throw new ConfigError('steering.tls.keyFile', '/x/key.pem does not match /x/cert.pem');
      },
    });
    const result = await r.reload();
    expect(result).toMatchObject({ ok: false, error: 'steering.tls.keyFile: /x/key.pem does not match /x/cert.pem' });
    expect(errors(w.lines).map((l) => l.msg)).toEqual(['reload refused: steering.tls.keyFile: /x/key.pem does not match /x/cert.pem; still serving the previous configuration']);
  });

  it('warnsOfEachFieldThatNeedsARestart', async () => {
    const w = world();
    const r = new Reloader({ configPath: w.file, logger: w.logger, apply: async () => ({ applied: [], needsRestart: ['steering.url'] }) });
    await r.reload();
    const warns = w.lines.filter((l) => l.level === 40);
    expect(warns).toHaveLength(1);
    expect(warns[0]!.msg).toMatch(/steering\.url changed and takes effect only after a restart/);
  });

  it('runsOneReloadAtATimeAndABurstDuringOneIsOneMore', async () => {
    const w = world();
    let inside = 0;
    let most = 0;
    let loads = 0;
    // Each apply parks until the test releases it; `arrived(n)` resolves once n applies have
    // started — an explicit gate, never a sleep (a loaded machine makes sleeps lie).
    const gates: (() => void)[] = [];
    let started = 0;
    const arrivals: { n: number; resolve: () => void }[] = [];
    const arrived = (n: number) => new Promise<void>((resolve) => (started >= n ? resolve() : arrivals.push({ n, resolve })));
    const r = new Reloader({
      configPath: w.file,
      logger: w.logger,
      load: (p) => {
        loads++;
        return loadClusterFile(p);
      },
      apply: async (next) => {
        inside++;
        most = Math.max(most, inside);
        const parked = new Promise<void>((res) => gates.push(res));
        started++;
        for (const a of arrivals.filter((x) => x.n <= started)) a.resolve();
        await parked;
        inside--;
        return w.apply(next);
      },
    });
    const first = r.reload();
    // Ten signals while the first is under way.
    const burst = Array.from({ length: 10 }, () => r.reload());
    await arrived(1);
    expect(gates).toHaveLength(1);
    // The file changes during the first reload: the queued one reads it as it is then.
    w.write(JSON.stringify(cluster({ healthIntervalMs: 250 })));
    gates.shift()!();
    await first;
    await arrived(2);
    expect(gates).toHaveLength(1);
    gates.shift()!();
    const results = await Promise.all(burst);
    expect(new Set(results).size).toBe(1); // one shared result
    expect(results[0]).toEqual({ ok: true, outcome: { applied: ['steering.healthIntervalMs'], needsRestart: [] } });
    expect(loads).toBe(2);
    expect(started).toBe(2);
    expect(most).toBe(1);
    expect(r.completed).toBe(2);
    // Idle again: the next one runs at once.
    const again = r.reload();
    await arrived(3);
    gates.shift()!();
    expect((await again).ok).toBe(true);
    expect(loads).toBe(3);
  });

  it('countsReloadsByOutcome', async () => {
    const w = world();
    const registry = new Registry();
    const r = new Reloader({ configPath: w.file, logger: w.logger, apply: w.apply, registry });
    await r.reload();
    w.write('nope');
    await r.reload();
    const text = await registry.metrics();
    expect(text).toMatch(/reelcdn_config_reloads_total\{outcome="applied"\} 1/);
    expect(text).toMatch(/reelcdn_config_reloads_total\{outcome="refused"\} 1/);
  });
});

describe('onSighup', () => {
  let off: (() => void) | undefined;
  afterEach(() => off?.());

  it('reloadsOnSighupInsteadOfExiting', async () => {
    const w = world();
    const r = new Reloader({ configPath: w.file, logger: w.logger, apply: w.apply });
    off = onSighup(r);
    w.write(JSON.stringify(cluster({ healthIntervalMs: 300 })));
    process.kill(process.pid, 'SIGHUP');
    const deadline = Date.now() + 5000;
    while (r.completed === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    expect(w.state.config.steering.healthIntervalMs).toBe(300);
  });
});

describe('POST /reload', () => {
  it('answers200WithTheOutcome422WithTheFieldAnd401WithoutTheToken', async () => {
    const w = world();
    const r = new Reloader({ configPath: w.file, logger: w.logger, apply: w.apply });
    const app = Fastify();
    app.addHook('onRequest', adminGuard(new Set(['/health']), TOKEN));
    registerReloadRoute(app, r);
    const auth = { authorization: `Bearer ${TOKEN}` };
    try {
      expect((await app.inject({ method: 'POST', url: '/reload' })).statusCode).toBe(401);
      w.write(JSON.stringify(cluster({ prefixes: ['10.0.0.0/8'] })));
      const good = await app.inject({ method: 'POST', url: '/reload', headers: auth });
      expect(good.statusCode).toBe(200);
      expect(good.json()).toEqual({ applied: ['isps'], needsRestart: [] });
      w.write(JSON.stringify({ ...cluster(), defaultIsp: 'isp-z' }));
      const bad = await app.inject({ method: 'POST', url: '/reload', headers: auth });
      expect(bad.statusCode).toBe(422);
      expect(bad.json()).toEqual({ error: 'defaultIsp: "isp-z" is not an ISP in isps' });
      expect(w.state.config.isps[0]!.prefixes).toEqual(['10.0.0.0/8']);
    } finally {
      await app.close();
    }
  });
});

describe('changedFields', () => {
  it('namesOnlyFieldsWhoseValuesDiffer', () => {
    const a = { x: { y: [1, 2] }, z: 'a' };
    expect(changedFields(a, { x: { y: [1, 2] }, z: 'b' }, { 'x.y': (c) => c.x.y, z: (c) => c.z })).toEqual(['z']);
  });
});
