import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/cli/commands.js';
import { CLI, PACKAGE_ROOT, ensureBuilt } from './helpers/cluster-procs.js';

function run(...args: string[]): { code: number; stdout: string; stderr: string } {
  ensureBuilt();
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, REELCDN_ADMIN_TOKEN: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const VERSION = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

describe('reelcdn --version and --help', () => {
  it('printsThePackageVersion', () => {
    for (const flag of ['--version', '-V', 'version']) {
      const r = run(flag);
      expect(r.code, flag).toBe(0);
      expect(r.stdout).toBe(`reelcdn ${VERSION}\n`);
      expect(r.stderr).toBe('');
    }
  });

  it('listsEveryCommandInTheUsage', () => {
    const r = run('--help');
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.stdout, c.name).toContain(`  reelcdn ${c.name} `);
    expect(r.stdout).toContain('reelcdn --version');
    expect(run().stdout).toBe(r.stdout);
  });

  it('givesEveryCommandItsOwnHelpWithEveryOptionItTakes', () => {
    expect(COMMANDS.map((c) => c.name)).toEqual(expect.arrayContaining(['demo', 'origin', 'steering', 'edge', 'ingest', 'fill', 'explain', 'reload', 'status', 'purge', 'drain', 'undrain']));
    for (const c of COMMANDS) {
      const r = run(c.name, '--help');
      expect(r.code, c.name).toBe(0);
      expect(r.stderr, c.name).toBe('');
      expect(r.stdout, c.name).toMatch(new RegExp(`^Usage: reelcdn ${c.name} `));
      // Every option the command accepts is described in its help.
      for (const opt of Object.keys(c.options)) expect(r.stdout, `${c.name} --${opt}`).toContain(`--${opt}`);
      if (c.admin) expect(r.stdout, c.name).toContain('REELCDN_ADMIN_TOKEN');
      expect(run('help', c.name).stdout, c.name).toBe(r.stdout);
      expect(run(c.name, '-h').stdout, c.name).toBe(r.stdout);
    }
  });

  it('refusesAnOptionTheCommandDoesNotTakeWithThatCommandsUsage', () => {
    const r = run('status', '--config', 'x.json', '--title', 't');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^reelcdn: status: Unknown option '--title'/);
    expect(r.stderr).toContain('Usage: reelcdn status --config FILE');
    const stray = run('purge', '--config', 'x.json', 'extra');
    expect(stray.code).toBe(2);
    expect(stray.stderr).toContain('Unexpected argument');
    const unknown = run('frobnicate');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^reelcdn: unknown command "frobnicate"\n\nreelcdn — /);
    expect(run('help', 'frobnicate').code).toBe(2);
  });

  it('saysWhatAnOperatorCommandNeedsBeforeAskingAnything', () => {
    const cases: [string[], string][] = [
      [['status'], 'status needs --config FILE'],
      [['purge', '--config', '/nonexistent.json'], 'config error'],
      [['drain', '--config', '/nonexistent.json'], 'config error'],
    ];
    for (const [args, msg] of cases) {
      const r = run(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toContain(msg);
    }
  });
});
