import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { PLAYER_BUNDLES } from '../src/steering/player-bundles.js';
import { TEST_ADMIN_TOKEN, TEST_KEYS, tempDir } from './helpers/cluster.js';
import { freePorts } from './helpers/ops-cluster.js';
import { until } from './helpers/role-proc.js';

/**
 * `npm pack` makes a package that works where it is installed: packed from a copy of the
 * sources (prepack builds it there, leaving this checkout's dist/ alone), installed into an
 * empty folder from the npm cache, and run — `reelcdn --version`, and steering serving the player
 * page with the two player bundles, which is all it carries of hls.js and dash.js.
 */

const ROOT = join(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; files: string[]; bin: Record<string, string>; dependencies: Record<string, string>; devDependencies: Record<string, string> };
const run = promisify(execFile);
/** npm next to the node running the tests. */
const npmEnv = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, npm_config_update_notifier: 'false' };
const npm = (args: string[], cwd: string) => run('npm', args, { cwd, env: npmEnv, maxBuffer: 64 * 1024 * 1024, timeout: 240_000 });

/** Bare module names a compiled file imports or resolves (import, import(), require, require.resolve). */
function bareImports(text: string): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(/(?:^import\s[^;]*?\bfrom\s*|^export\s[^;]*?\bfrom\s*|\bimport\s*\(\s*|\brequire(?:\.resolve)?\s*\(\s*)(['"])([@\w][\w.@/-]*)\1/gm)) {
    const spec = m[2]!;
    if (spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]!)) continue;
    out.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
  }
  return [...out];
}

function jsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? jsFiles(p) : p.endsWith('.js') ? [p] : [];
  });
}

describe('npm pack', () => {
  let steering: ChildProcess | undefined;
  afterAll(() => void steering?.kill('SIGKILL'));

  it('packs a package whose bin runs where it is installed, with runtime dependencies only and the two player bundles', async () => {
    // A copy of what the package is made from; node_modules shared (tsc, the bundles' sources).
    const src = tempDir('reelcdn-pack-src-');
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'README.md']) cpSync(join(ROOT, f), join(src, f));
    for (const d of ['src', 'bin', 'public', 'scripts', 'deploy', 'docs', 'test/fixtures/media', ...(existsSync(join(ROOT, 'schema')) ? ['schema'] : [])]) cpSync(join(ROOT, d), join(src, d), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(src, 'node_modules'), 'dir');

    const out = tempDir('reelcdn-pack-out-');
    const packed = JSON.parse((await npm(['pack', '--json', '--pack-destination', out], src)).stdout.replace(/^[^[]*/, '')) as { filename: string; files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    expect(files).toContain('bin/reelcdn.js');
    expect(files).toContain('dist/src/cli.js');
    expect(files).toContain('public/player/index.html');
    for (const b of PLAYER_BUNDLES) expect(files).toContain(`dist/vendor/${b.name}`);
    // Nothing the package does not run: no sources, tests, benchmarks or source maps.
    expect(files.filter((f) => /\.map$|\.ts$|^dist\/bench\/|^bench\/|^src\//.test(f) || (f.startsWith('test/') && !f.startsWith('test/fixtures/media/')))).toEqual([]);
    expect(files.filter((f) => f.startsWith('node_modules/'))).toEqual([]);

    // Installed from the tarball into an empty project, dependencies from the npm cache.
    const app = tempDir('reelcdn-pack-app-');
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'reelcdn-pack-test', version: '1.0.0', private: true }));
    const tarball = join(out, packed[0]!.filename);
    try {
      await npm(['install', '--offline', '--no-audit', '--no-fund', tarball], app);
    } catch (err) {
      // A cache without every runtime dependency (a machine that never installed one of them).
      process.stderr.write(`npm install --offline failed, trying --prefer-offline: ${String((err as { stderr?: string }).stderr ?? (err as Error).message).trim().split('\n').slice(-3).join(' | ')}\n`);
      await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], app);
    }
    const installed = join(app, 'node_modules', pkg.name);
    const modules = readdirSync(join(app, 'node_modules'));
    // Development-only packages stay out: the benchmarks' load generator, the player packages, the toolchain.
    for (const dev of ['autocannon', 'hls.js', 'dashjs', 'typescript', 'vitest']) expect(modules, dev).not.toContain(dev);
    for (const dep of Object.keys(pkg.dependencies)) expect(existsSync(join(app, 'node_modules', dep)), dep).toBe(true);

    // Every package the compiled code imports is a runtime dependency, and every runtime dependency is used.
    const imported = new Set(jsFiles(join(installed, 'dist', 'src')).flatMap((f) => bareImports(readFileSync(f, 'utf8'))));
    for (const name of imported) expect(Object.keys(pkg.dependencies), `dist/src imports ${name}`).toContain(name);
    for (const name of Object.keys(pkg.dependencies)) expect([...imported], `dependency ${name} is never imported by dist/src`).toContain(name);
    for (const name of imported) expect(existsSync(join(app, 'node_modules', name, 'package.json')), `${name} installed`).toBe(true);

    const bin = join(app, 'node_modules', '.bin', Object.keys(pkg.bin)[0]!);
    expect((await run(bin, ['--version'])).stdout).toBe(`reelcdn ${pkg.version}\n`);

    // Steering from the installed package serves the player page and its bundles.
    const [s, sa] = await freePorts(2);
    const dir = tempDir('reelcdn-pack-run-');
    writeFileSync(
      join(dir, 'cluster.json'),
      JSON.stringify({
        signing: { keys: TEST_KEYS, activeKey: 'k1' },
        origin: { url: 'http://127.0.0.1:9', adminUrl: 'http://127.0.0.1:9', dataDir: 'origin' },
        steering: { url: `http://127.0.0.1:${s}`, adminUrl: `http://127.0.0.1:${sa}` },
        isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/8'] }],
        edges: [{ id: 'edge-a1', isp: 'isp-a', url: 'http://127.0.0.1:9', adminUrl: 'http://127.0.0.1:9', dataDir: 'edge', diskBytes: 1e6, memoryBytes: 1e6 }],
        log: { level: 'warn' },
      }),
      { mode: 0o600 },
    );
    steering = spawn(bin, ['steering', '--config', join(dir, 'cluster.json')], { env: { ...process.env, REELCDN_ADMIN_TOKEN: TEST_ADMIN_TOKEN }, stdio: 'ignore' });
    const get = async (path: string) => {
      const res = await request(`http://127.0.0.1:${s}${path}`);
      return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
    };
    await until('steering from the installed package', async () => ((await get('/player/')).status === 200 ? true : undefined), 30_000);
    const repoRequire = createRequire(join(ROOT, 'package.json'));
    for (const b of PLAYER_BUNDLES) {
      const got = await get(`/player/vendor/${b.name}`);
      expect(got.status, b.name).toBe(200);
      expect(got.body.equals(readFileSync(repoRequire.resolve(b.from))), `${b.name} is the npm package's file`).toBe(true);
    }
    steering.kill('SIGTERM');
  }, 300_000);
});
