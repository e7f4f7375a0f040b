import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { checkCluster } from '../../src/common/config-check.js';
import { ConfigError, loadClusterFile, validateCluster } from '../../src/common/config.js';
import { Reloader } from '../../src/common/reload.js';
import { demoClusterFile } from '../../src/demo.js';
import { buildPrefixTable } from '../../src/steering/prefix-table.js';
import { tempDir } from '../helpers/cluster.js';

type Raw = Record<string, any>;

/** Two ISPs, three edges (two in isp-a, so a parent chain fits inside one ISP). */
function good(): Raw {
  const edge = (id: string, isp: string, port: number) => ({
    id, isp, url: `http://127.0.0.1:${port}`, adminUrl: `http://127.0.0.1:${port + 1000}`, dataDir: `data/${id}`, diskBytes: 1e9, memoryBytes: 1e7,
  });
  return {
    signing: { keys: { k1: 'k1-secret-0123456789abcdef' }, activeKey: 'k1' },
    origin: { url: 'http://127.0.0.1:7000', adminUrl: 'http://127.0.0.1:7001', dataDir: 'data/origin' },
    steering: { url: 'http://127.0.0.1:8080', adminUrl: 'http://127.0.0.1:8081' },
    isps: [
      { id: 'isp-a', prefixes: ['127.0.0.0/16', '10.1.0.0/16', '2001:db8:a::/48'] },
      { id: 'isp-b', prefixes: ['127.2.0.0/16'] },
    ],
    edges: [edge('edge-a1', 'isp-a', 8101), edge('edge-a2', 'isp-a', 8102), edge('edge-b1', 'isp-b', 8201)],
  };
}

const lines = (problems: ConfigError[]) => problems.map((p) => p.message);

function problemsOf(mutate: (c: Raw) => void): ConfigError[] {
  const c = good();
  mutate(c);
  return checkCluster(c, '/base');
}

/** Writes the cluster to a file and loads it as a role does at start; the one line it refuses with, or 'started'. */
function startWith(mutate: (c: Raw) => void): string {
  const c = good();
  mutate(c);
  const file = join(tempDir(), 'cluster.json');
  writeFileSync(file, JSON.stringify(c), { mode: 0o600 });
  try {
    loadClusterFile(file);
    return 'started';
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
}

describe('checkCluster', () => {
  it('findsNothingWrongWithAGoodFileOrTheDemos', () => {
    expect(checkCluster(good(), '/base')).toEqual([]);
    // The TLS demo's certificate paths are only names here: the file's shape is what is checked.
    for (const tls of [false, true]) {
      const demo = demoClusterFile(7000, tls) as Raw;
      demo.signing = { keys: { k1: 'k1-secret-0123456789abcdef' }, activeKey: 'k1' };
      expect(lines(checkCluster(demo, '/base'))).toEqual([]);
    }
  });

  // The bad files of issue 14, point 1: [what is wrong, mutation, the one line, refused at start too]
  const bad: [string, (c: Raw) => void, string, boolean][] = [
    ['a typo in a key', (c) => (c.edges[0].sliceByte = 65536), 'edges[0].sliceByte: unknown key (did you mean "sliceBytes"?)', true],
    ['an unknown key far from any', (c) => (c.steering.colour = 'blue'), 'steering.colour: unknown key', true],
    ['an unknown top-level key', (c) => (c.edge = []), 'edge: unknown key (did you mean "edges"?)', true],
    ['a prefix two ISPs list', (c) => c.isps[1].prefixes.push('10.1.0.0/16'), 'isps[1].prefixes[1]: "10.1.0.0/16" is also listed by isps[0] ("isp-a"): a prefix belongs to one ISP', true],
    ['the same network written with host bits', (c) => c.isps[1].prefixes.push('10.1.7.7/16'), 'isps[1].prefixes[1]: "10.1.7.7/16" is also listed by isps[0] ("isp-a"): a prefix belongs to one ISP', true],
    ['an IPv6 prefix two ISPs list', (c) => c.isps[1].prefixes.push('2001:db8:a:0::/48'), 'isps[1].prefixes[1]: "2001:db8:a:0::/48" is also listed by isps[0] ("isp-a"): a prefix belongs to one ISP', true],
    // Steering reads ::ffff:a.b.c.d/n as the IPv4 prefix a.b.c.d/(n-96) (prefix-table.ts): so does the check.
    ['an IPv4-mapped prefix of an IPv4 prefix another ISP lists', (c) => c.isps[1].prefixes.push('::ffff:10.1.0.0/112'), 'isps[1].prefixes[1]: "::ffff:10.1.0.0/112" is also listed by isps[0] ("isp-a"): a prefix belongs to one ISP', true],
    ['an IPv4 prefix another ISP lists IPv4-mapped (in hex)', (c) => c.isps[0].prefixes.push('::ffff:7f02:0/112'), 'isps[1].prefixes[0]: "127.2.0.0/16" is also listed by isps[0] ("isp-a"): a prefix belongs to one ISP', true],
    ['an IPv4-mapped prefix shorter than the mapping', (c) => c.isps[1].prefixes.push('::ffff:10.0.0.0/80'), 'isps[1].prefixes[1]: "::ffff:10.0.0.0/80" is IPv4-mapped: its length must be 96-128 (steering reads ::ffff:a.b.c.d/n as a.b.c.d/(n-96))', true],
    ['a parent cycle', (c) => ((c.edges[0].parent = 'edge-a2'), (c.edges[1].parent = 'edge-a1')), 'edges[0].parent: cycle edge-a1 → edge-a2 → edge-a1', true],
    ['a parent in another ISP', (c) => (c.edges[2].parent = 'edge-a1'), 'edges[2].parent: "edge-a1" is an edge of isp-a, not of isp-b: a parent serves the edges of its own ISP', true],
    ['a parent that is no edge', (c) => (c.edges[0].parent = 'edge-q'), 'edges[0].parent: "edge-q" is not an edge id', true],
    ['two services on one host:port', (c) => (c.edges[1].adminUrl = 'http://127.0.0.1:8081'), 'edges[1].adminUrl: 127.0.0.1:8081 is also steering.adminUrl: two services cannot listen on one address', false],
    ['one port written two ways', (c) => ((c.origin.url = 'http://LOCALHOST:80'), (c.origin.adminUrl = 'http://localhost')), 'origin.adminUrl: localhost:80 is also origin.url: two services cannot listen on one address', false],
    ['an ISP without edges', (c) => c.isps.push({ id: 'isp-c', prefixes: ['192.0.2.0/24'] }), `isps[2]: "isp-c" has no edges (no edges[].isp names it): its clients would be sent to other ISPs' edges`, false],
    ['a defaultIsp that does not exist', (c) => (c.defaultIsp = 'isp-z'), 'defaultIsp: "isp-z" is not an ISP in isps', true],
    ['a fill window that does not parse', (c) => (c.edges[0].fill = { window: '2:00-6:00' }), 'edges[0].fill.window: "2:00-6:00" must look like "02:00-06:00"', true],
    ['a fill window past midnight', (c) => (c.edges[0].fill = { window: '22:00-24:30' }), 'edges[0].fill.window: "22:00-24:30" must look like "02:00-06:00"', true],
  ];
  it.each(bad)('%s: one line naming the field', (_what, mutate, line, refusedAtStart) => {
    expect(lines(problemsOf(mutate))).toEqual([line]);
    expect(line).not.toMatch(/\n/);
    // Every role runs the same check at start; the two CHECK_ONLY findings are for `reelcdn check`.
    expect(startWith(mutate)).toBe(refusedAtStart ? line : 'started');
  });

  it('refusesWhatSteeringsPrefixTableRefusesAndNoMore', () => {
    const table = (c: Raw) => buildPrefixTable((c.isps as { id: string; prefixes: string[] }[]).flatMap((i) => i.prefixes.map((prefix) => ({ prefix, value: i.id }))));
    const cases: ((c: Raw) => void)[] = [
      (c) => c.isps[1].prefixes.push('::ffff:10.1.0.0/112'),
      (c) => c.isps[1].prefixes.push('::ffff:10.1.9.9/112'),
      (c) => c.isps[0].prefixes.push('::ffff:7f02:0/112'),
      (c) => c.isps[1].prefixes.push('::ffff:10.0.0.0/80'),
      (c) => c.isps[1].prefixes.push('::ffff:10.1.0.0/113'), // nested in isp-a's: fine for both
      (c) => c.isps[1].prefixes.push('::ffff:0:0/96'), // all of IPv4: nested, fine
      (c) => c.isps[1].prefixes.push('::/96'), // an IPv6 prefix (not mapped): fine
      (c) => c.isps[1].prefixes.push('::ffff:10.1.0.1'), // one mapped address inside isp-a's /16: fine
    ];
    for (const mutate of cases) {
      const c = good();
      mutate(c);
      let steering = 'built';
      try {
        table(c);
      } catch {
        steering = 'refused';
      }
      expect(problemsOf(mutate).length > 0 ? 'refused' : 'built', JSON.stringify(c.isps)).toBe(steering);
    }
  });

  it('leavesNestedPrefixesPortZeroAndAPrefixAnISPListsTwiceAlone', () => {
    expect(problemsOf((c) => c.isps[1].prefixes.push('10.1.2.0/24', '127.2.0.0/16'))).toEqual([]);
    expect(problemsOf((c) => ((c.edges[0].url = 'http://127.0.0.1:0'), (c.edges[0].adminUrl = 'http://127.0.0.1:0')))).toEqual([]);
    expect(problemsOf((c) => (c.edges[1].parent = 'edge-a1'))).toEqual([]);
  });

  it('findsTheOneNetworkTwoISPsShareAmongAQuarterMillionPrefixes', () => {
    const many = (from: number) => Array.from({ length: 125_000 }, (_, n) => `${from + (n >>> 16)}.${(n >>> 8) & 255}.${n & 255}.0/24`);
    const problems = problemsOf((c) => {
      c.isps[0].prefixes = [...many(20), '10.1.0.0/16', '20.0.0.0/24', '2001:db8:a::/48'];
      c.isps[1].prefixes = [...many(40), '20.0.0.9/24', '2001:db8:a::1/48'];
    });
    expect(lines(problems)).toEqual([
      'isps[1].prefixes[125000]: "20.0.0.9/24" is also listed by isps[0] ("isp-a"): a prefix belongs to one ISP',
      'isps[1].prefixes[125001]: "2001:db8:a::1/48" is also listed by isps[0] ("isp-a"): a prefix belongs to one ISP',
    ]);
  });

  it('refusesAtStartWhatLiesUnderAFindingOnlyCheckRefuses', () => {
    // isp-c has no edges (check only) and lists isp-a's prefix (refused everywhere).
    const mutate = (c: Raw) => c.isps.push({ id: 'isp-c', prefixes: ['10.1.0.0/16'] });
    expect(lines(problemsOf(mutate))).toEqual([
      'isps[2].prefixes[0]: "10.1.0.0/16" is also listed by isps[0] ("isp-a"): a prefix belongs to one ISP',
      `isps[2]: "isp-c" has no edges (no edges[].isp names it): its clients would be sent to other ISPs' edges`,
    ]);
    expect(startWith(mutate)).toBe('isps[2].prefixes[0]: "10.1.0.0/16" is also listed by isps[0] ("isp-a"): a prefix belongs to one ISP');
  });

  it('staysLinearInTheProblemsItFinds', () => {
    // 100,000 bad prefixes: each is one line, found in well under the test's time.
    const problems = problemsOf((c) => (c.isps[1].prefixes = Array.from({ length: 100_000 }, (_, n) => `300.0.${n}.0/24`)));
    expect(problems).toHaveLength(100_000);
    expect(problems[99_999]!.message).toBe('isps[1].prefixes[99999]: "300.0.99999.0/24" is not an IPv4 or IPv6 prefix');
  });

  it('reportsEveryProblemAtOnceInTheOrderOfTheFile', () => {
    const problems = problemsOf((c) => {
      c.edges[2].diskBytes = -1;
      c.edges[0].sliceByte = 1;
      c.signing.ttlSeconds = 0;
      c.isps[1].prefixes.push('10.1.0.0/16');
      c.steering.thresholds = { maxErrorRatio: 2 };
      c.log = { level: 'loud' };
      c.edges[1].timezone = 'Mars/Olympus_Mons';
      c.defaultIsp = 'isp-z';
    });
    expect(lines(problems)).toEqual([
      'signing.ttlSeconds: must be a positive integer',
      'steering.thresholds.maxErrorRatio: must be a number from 0 to 1',
      'isps[1].prefixes[1]: "10.1.0.0/16" is also listed by isps[0] ("isp-a"): a prefix belongs to one ISP',
      'defaultIsp: "isp-z" is not an ISP in isps',
      'edges[0].sliceByte: unknown key (did you mean "sliceBytes"?)',
      'edges[1].timezone: "Mars/Olympus_Mons" is not an IANA timezone',
      'edges[2].diskBytes: must be a positive integer',
      'log.level: must be one of fatal, error, warn, info, debug, trace, silent',
    ]);
  });

  it('saysOneThingPerFieldAndNothingUnderAFieldItRefused', () => {
    // An edge that is not an object is one problem, not one per key it lacks.
    expect(lines(problemsOf((c) => (c.edges[1] = 'edge-a2')))).toEqual(['edges[1]: must be an object']);
    expect(lines(problemsOf((c) => (c.edges[0].diskBytes = 'lots')))).toEqual(['edges[0].diskBytes: must be a positive integer']);
    expect(lines(checkCluster([1, 2], '/base'))).toEqual(['(cluster file): must be an object']);
  });

  // As test/config.test.ts's table: what validateCluster refuses, the check refuses in the same words.
  const same: [string, (c: Raw) => void][] = [
    ['missing activeKey', (c) => delete c.signing.activeKey],
    ['activeKey not among the keys', (c) => (c.signing.activeKey = 'k7')],
    ['no keys', (c) => (c.signing.keys = {})],
    ['keys and keysFile', (c) => (c.signing.keysFile = 'keys.json')],
    ['short secret', (c) => (c.signing.keys.k1 = 'short')],
    ['bad key id', (c) => (c.signing.keys['bad key'] = 'x'.repeat(20))],
    ['ttl zero', (c) => (c.signing.ttlSeconds = 0)],
    ['required not boolean', (c) => (c.signing.required = 'no')],
    ['origin url not a URL', (c) => (c.origin.url = 'nope')],
    ['origin url ftp', (c) => (c.origin.url = 'ftp://x')],
    ['missing origin.dataDir', (c) => delete c.origin.dataDir],
    ['bad trusted proxy', (c) => (c.steering.trustedProxies = ['1.2.3'])],
    ['threshold ratio > 1', (c) => (c.steering.thresholds = { maxErrorRatio: 2 })],
    ['balanceFactor below 1', (c) => (c.steering.balanceFactor = 0.5)],
    ['bad prefix address', (c) => (c.isps[0].prefixes[1] = '10.1.0/16')],
    ['prefix length too long', (c) => (c.isps[1].prefixes[0] = '127.2.0.0/33')],
    ['prefixes not an array', (c) => (c.isps[0].prefixes = '127.0.0.0/8')],
    ['duplicate isp id', (c) => (c.isps[1].id = 'isp-a')],
    ['no edges', (c) => (c.edges = [])],
    ['duplicate edge id', (c) => (c.edges[1].id = 'edge-a1')],
    ['bad edge id', (c) => (c.edges[0].id = '-edge')],
    ['unknown isp', (c) => (c.edges[1].isp = 'isp-q')],
    ['bad timezone', (c) => (c.edges[0].timezone = 'Mars/Olympus_Mons')],
    ['fill rate zero', (c) => (c.edges[0].fill = { bytesPerSec: 0 })],
    ['diskBytes fractional', (c) => (c.edges[0].diskBytes = 1.5)],
    ['memoryBytes a string', (c) => (c.edges[1].memoryBytes = '100')],
    ['missing memoryBytes', (c) => delete c.edges[1].memoryBytes],
    ['sliceBytes too small', (c) => (c.edges[0].sliceBytes = 1000)],
    ['workers too many', (c) => (c.edges[0].workers = 1000)],
    ['dataDir with NUL', (c) => (c.edges[0].dataDir = 'a\0b')],
    ['own parent', (c) => (c.edges[0].parent = 'edge-a1')],
    ['https without tls', (c) => (c.edges[0].url = 'https://127.0.0.1:8101')],
    ['client certificates on an edge', (c) => (c.edges[0].tls = { certFile: 'c.pem', keyFile: 'k.pem', caFile: 'ca.pem', requireClientCert: true })],
    ['halfLifeDays zero', (c) => (c.origin.fill = { halfLifeDays: 0 })],
    ['enterRatio under stayRatio', (c) => (c.origin.fill = { stayRatio: 0.9, enterRatio: 0.5 })],
    ['s3 storage without a region', (c) => (c.origin.storage = { kind: 's3', bucket: 'media' })],
    ['an unknown storage kind', (c) => (c.origin.storage = { kind: 'gcs' })],
    ['a storage prefix that is no string', (c) => (c.origin.storage = { kind: 's3', bucket: 'media', region: 'eu-west-1', prefix: 7 })],
    ['a bad bucket name', (c) => (c.origin.storage = { kind: 's3', bucket: 'Media', region: 'eu-west-1' })],
    ['headers timeout over the request timeout', (c) => (c.http = { headersTimeoutMs: 40_000 })],
    ['bad log level', (c) => (c.log = { level: 'loud' })],
    ['openMetrics not boolean', (c) => (c.admin = { openMetrics: 1 })],
  ];
  it.each(same)('%s: the words validateCluster uses', (_what, mutate) => {
    const c = good();
    mutate(c);
    let refused: ConfigError | undefined;
    try {
      validateCluster(c, '/base');
    } catch (err) {
      refused = err as ConfigError;
    }
    expect(refused).toBeInstanceOf(ConfigError);
    // Its consequences may follow (an ISP id used twice leaves an edge's ISP missing), never a rewording.
    expect(lines(checkCluster(c, '/base'))).toContain(refused!.message);
  });

  it('neverThrowsOnWhateverJsonItIsGivenAndRefusesWhatValidateClusterRefuses', () => {
    // Any JSON at all, and a good file with any JSON put at any of its paths.
    const paths: string[][] = [];
    const walk = (v: unknown, at: string[]) => {
      paths.push(at);
      if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...at, k]);
    };
    walk(good(), []);
    const put = (path: string[], value: unknown): unknown => {
      if (path.length === 0) return value;
      const c = good();
      let o: any = c;
      for (const k of path.slice(0, -1)) o = o[k];
      o[path.at(-1)!] = value;
      return c;
    };
    fc.assert(
      fc.property(fc.constantFrom(...paths), fc.jsonValue({ maxDepth: 3 }), (path, value) => {
        const raw = put(path, value);
        const problems = checkCluster(raw, '/base');
        for (const p of problems) {
          expect(p).toBeInstanceOf(ConfigError);
          expect(p.message).not.toMatch(/\n/);
        }
        let valid = true;
        try {
          validateCluster(raw, '/base');
        } catch {
          valid = false;
        }
        if (!valid) expect(problems.length).toBeGreaterThan(0);
      }),
      { numRuns: 400 },
    );
  });
});

describe('loadClusterFile with several problems', () => {
  it('refusesWithTheFirstLineAndHowManyMoreReelcdnCheckLists', () => {
    const line = startWith((c) => {
      c.edges[0].sliceByte = 1;
      c.edges[1].windows = '02:00-06:00';
      c.isps[1].prefixes.push('10.1.0.0/16');
    });
    expect(line).toMatch(/^isps\[1\]\.prefixes\[1\]: "10\.1\.0\.0\/16" is also listed by isps\[0\] \("isp-a"\): a prefix belongs to one ISP \(and 2 more problems: reelcdn check --config \/.+\/cluster\.json\)$/);
  });

  it('saysWhatValidateClusterSaysFirstAsBefore', () => {
    // A problem validateCluster knows comes first, in its words, even beside new ones.
    expect(startWith((c) => ((c.edges[0].sliceByte = 1), (c.edges[1].diskBytes = -1)))).toBe('edges[1].diskBytes: must be a positive integer');
  });
});

describe('a reload runs the same check', () => {
  it('refusesATypoNamingTheFieldAndAppliesNothing', async () => {
    const file = join(tempDir(), 'cluster.json');
    const c = good();
    writeFileSync(file, JSON.stringify(c), { mode: 0o600 });
    const logged: Record<string, unknown>[] = [];
    let applied = 0;
    const reloader = new Reloader({
      configPath: file,
      logger: pino({ level: 'info' }, { write: (l: string) => void logged.push(JSON.parse(l)) }),
      apply: async () => {
        applied++;
        return { applied: [], needsRestart: [] };
      },
    });
    c.steering.healthIntervalMS = 250;
    writeFileSync(file, JSON.stringify(c), { mode: 0o600 });
    const result = await reloader.reload();
    expect(result).toMatchObject({ ok: false, field: 'steering.healthIntervalMS', problem: 'unknown key (did you mean "healthIntervalMs"?)' });
    expect(applied).toBe(0);
    expect(logged.filter((l) => l.level === 50).map((l) => l.msg)).toEqual([
      'reload refused: steering.healthIntervalMS: unknown key (did you mean "healthIntervalMs"?); still serving the previous configuration',
    ]);
  });
});
