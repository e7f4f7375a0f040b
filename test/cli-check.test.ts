import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_SERVICES, writeDemoFiles } from '../src/demo.js';
import { ensureDemoPki } from '../src/demo-pki.js';
import { tempDir } from './helpers/cluster.js';
import { CLI, ensureBuilt } from './helpers/cluster-procs.js';

const ROOT = join(import.meta.dirname, '..');

type Raw = Record<string, any>;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function reelcdn(...args: string[]): Run {
  ensureBuilt();
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, REELCDN_ADMIN_TOKEN: 'check-test-token-0123456789' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The demo's cluster file (keys in their own file beside it), changed by `mutate`, in a fresh directory. */
function demoCluster(mutate: (c: Raw) => void = () => {}, tls = false): string {
  const dir = tempDir();
  const file = writeDemoFiles(dir, 7000, tls);
  if (tls) ensureDemoPki(dir, DEMO_SERVICES);
  const c = JSON.parse(readFileSync(file, 'utf8'));
  mutate(c);
  writeFileSync(file, JSON.stringify(c, null, 2));
  return file;
}

describe('reelcdn check', () => {
  it('saysOkWithASummaryForTheDemoClusterFiles', () => {
    const plain = demoCluster();
    const r = reelcdn('check', '--config', plain);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(`ok: ${plain}: 3 edges in 2 ISPs (3 prefixes), origin http://127.0.0.1:7000, steering http://127.0.0.1:7080, 1 signing key (active k1), HTTPS on 0 of 5 services\n`);

    // With --tls every certificate is read and checked too, as each role does at start.
    const tls = demoCluster(() => {}, true);
    const t = reelcdn('check', '--config', tls);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^ok: .+cluster-tls\.json: 3 edges .* HTTPS on 5 of 5 services\n$/);
  });

  it('saysOkForTheKubernetesClusterFileWithItsKeysWhereThePodHasThem', () => {
    // The ConfigMap's file names the keys at the Secret's mount; here they are beside it.
    const c = JSON.parse(readFileSync(join(ROOT, 'deploy', 'kubernetes', 'cluster.json'), 'utf8'));
    const dir = tempDir();
    writeFileSync(join(dir, 'signing-keys.json'), JSON.stringify({ [c.signing.activeKey]: 'k8s-test-secret-0123456789' }), { mode: 0o600 });
    c.signing.keysFile = join(dir, 'signing-keys.json');
    const file = join(dir, 'cluster.json');
    writeFileSync(file, JSON.stringify(c));
    const r = reelcdn('check', '--config', file);
    expect(r.stdout).toMatch(/^ok: /);
    expect(r.code).toBe(0);
  });

  // The bad files of issue 14, point 1, each through a real process: its one line, exit 2.
  const bad: [string, (c: Raw) => void, string][] = [
    ['a typo', (c) => (c.edges[0].sliceByte = 65536), 'edges[0].sliceByte: unknown key (did you mean "sliceBytes"?)'],
    ['a prefix two ISPs list', (c) => c.isps[1].prefixes.push('127.0.0.0/16'), 'isps[1].prefixes[1]: "127.0.0.0/16" is also listed by isps[0] ("isp-a"): a prefix belongs to one ISP'],
    ['a parent cycle', (c) => ((c.edges[0].parent = 'edge-a2'), (c.edges[1].parent = 'edge-a1')), 'edges[0].parent: cycle edge-a1 → edge-a2 → edge-a1'],
    ['a parent in another ISP', (c) => (c.edges[2].parent = 'edge-a1'), 'edges[2].parent: "edge-a1" is an edge of isp-a, not of isp-b: a parent serves the edges of its own ISP'],
    ['two services on one port', (c) => (c.edges[1].adminUrl = c.steering.adminUrl), 'edges[1].adminUrl: 127.0.0.1:7081 is also steering.adminUrl: two services cannot listen on one address'],
    ['an ISP without edges', (c) => (c.edges[2].isp = 'isp-a'), `isps[1]: "isp-b" has no edges (no edges[].isp names it): its clients would be sent to other ISPs' edges`],
    ['a defaultIsp that does not exist', (c) => (c.defaultIsp = 'isp-c'), 'defaultIsp: "isp-c" is not an ISP in isps'],
    ['a fill window that does not parse', (c) => (c.edges[1].fill.window = '02:00-6:00'), 'edges[1].fill.window: "02:00-6:00" must look like "02:00-06:00"'],
  ];
  it.each(bad)('refuses %s with one line naming the field', (_what, mutate, line) => {
    const file = demoCluster(mutate);
    const r = reelcdn('check', '--config', file);
    expect(r).toEqual({ code: 2, stdout: `${line}\n${file}: 1 problem\n`, stderr: '' });
  });

  it('listsEveryProblemAtOnce', () => {
    const file = demoCluster((c) => {
      c.edges[0].sliceByte = 65536;
      c.edges[1].diskBytes = -5;
      c.edges[2].parent = 'edge-a1';
      c.isps[1].prefixes.push('127.0.0.0/16');
      c.steering.tresholds = { maxErrorRatio: 0.5 };
      c.log.level = 'verbose';
    });
    const r = reelcdn('check', '--config', file);
    expect(r.code).toBe(2);
    expect(r.stdout.split('\n')).toEqual([
      'steering.tresholds: unknown key (did you mean "thresholds"?)',
      'isps[1].prefixes[1]: "127.0.0.0/16" is also listed by isps[0] ("isp-a"): a prefix belongs to one ISP',
      'edges[0].sliceByte: unknown key (did you mean "sliceBytes"?)',
      'edges[1].diskBytes: must be a positive integer',
      'edges[2].parent: "edge-a1" is an edge of isp-a, not of isp-b: a parent serves the edges of its own ISP',
      'log.level: must be one of fatal, error, warn, info, debug, trace, silent',
      `${file}: 6 problems`,
      '',
    ]);

    const j = reelcdn('check', '--config', file, '--json');
    expect(j.code).toBe(2);
    const report = JSON.parse(j.stdout);
    expect(report).toMatchObject({ file, ok: false, warnings: [] });
    expect(report.problems).toHaveLength(6);
    expect(report.problems[3]).toEqual({ field: 'edges[1].diskBytes', problem: 'must be a positive integer' });
  });

  it('readsTheFilesTheClusterFileNames', () => {
    // Edge-a2 given edge-a1's key: found without starting anything, as edge-a2 would find it.
    const file = demoCluster((c) => {
      c.edges[1].tls.keyFile = c.edges[0].tls.keyFile;
      c.origin.tls.certFile = 'tls/nowhere.pem';
    }, true);
    const dir = join(file, '..');
    const r = reelcdn('check', '--config', file);
    expect(r.code).toBe(2);
    expect(r.stdout.split('\n')).toEqual([
      `origin.tls.certFile: cannot read ${join(dir, 'tls/nowhere.pem')}: ENOENT`,
      `edges[1].tls.keyFile: ${join(dir, 'tls/edge-a1-key.pem')} does not match ${join(dir, 'tls/edge-a2.pem')}`,
      `${file}: 2 problems`,
      '',
    ]);

    const keys = demoCluster((c) => (c.signing.keysFile = 'elsewhere.json'));
    expect(reelcdn('check', '--config', keys).stdout).toBe(`signing.keysFile: cannot read ${join(keys, '..', 'elsewhere.json')}: ENOENT\n${keys}: 1 problem\n`);
  });

  it('saysOneLineForAFileItCannotReadOrParse', () => {
    const dir = tempDir();
    const missing = join(dir, 'missing.json');
    expect(reelcdn('check', '--config', missing)).toEqual({ code: 2, stdout: `(cluster file): cannot read ${missing}: ENOENT\n${missing}: 1 problem\n`, stderr: '' });
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{ "signing": ');
    const r = reelcdn('check', '--config', broken);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^\(cluster file\): .+broken\.json is not valid JSON/);
  });

  it('printsWarningsBeforeOk', () => {
    const file = demoCluster((c) => {
      c.signing = { keys: { k1: 'inline-secret-0123456789' }, activeKey: 'k1' };
    });
    chmodSync(file, 0o644);
    const r = reelcdn('check', '--config', file);
    expect(r.code).toBe(0);
    const [warning, ok] = r.stdout.split('\n');
    expect(warning).toMatch(/^warning: .+ holds signing secrets \(signing\.keys\) and is readable by group or others/);
    expect(ok).toMatch(/^ok: /);
    expect(r.stdout).not.toContain('inline-secret');
  });

  it('wantsConfig', () => {
    const r = reelcdn('check');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^reelcdn: check needs --config FILE\n/);
  });
});

describe('every role runs the same check at start', () => {
  it('refusesAPrefixTwoISPsListNamingTheFieldNotAStackTrace', () => {
    const file = demoCluster((c) => c.isps[1].prefixes.push('127.0.0.0/16'));
    const r = reelcdn('steering', '--config', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('reelcdn: config error: isps[1].prefixes[1]: "127.0.0.0/16" is also listed by isps[0] ("isp-a"): a prefix belongs to one ISP\n');
  });

  it('refusesATypoAtStartAndSaysHowManyMoreCheckLists', () => {
    const file = demoCluster((c) => {
      c.edges[0].sliceByte = 65536;
      c.edges[2].parent = 'edge-a1';
    });
    const r = reelcdn('origin', '--config', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`reelcdn: config error: edges[0].sliceByte: unknown key (did you mean "sliceBytes"?) (and 1 more problem: reelcdn check --config ${file})\n`);
  });
});
