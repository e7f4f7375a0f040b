import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_SLICE_BYTES, checkPrefix, findEdge, listenAddress, loadClusterFile, validateCluster } from '../src/common/config.js';
import { tempDir } from './helpers/cluster.js';

function good(): Record<string, any> {
  return {
    signing: { keys: { k1: 'k1-secret-0123456789abcdef', k2: 'k2-secret-0123456789abcdef' }, activeKey: 'k1', ttlSeconds: 3600 },
    origin: { url: 'http://127.0.0.1:7000', adminUrl: 'http://127.0.0.1:7001', dataDir: 'data/origin' },
    steering: { url: 'http://127.0.0.1:8080', adminUrl: 'http://127.0.0.1:8081' },
    isps: [
      { id: 'isp-a', prefixes: ['127.0.0.0/16', '10.1.0.0/16', '2001:db8:a::/48'] },
      { id: 'isp-b', prefixes: ['127.2.0.0/16'] },
    ],
    edges: [
      {
        id: 'edge-a1', isp: 'isp-a', url: 'http://127.0.0.1:8101', adminUrl: 'http://127.0.0.1:9101', dataDir: 'data/edge-a1',
        diskBytes: 2_000_000_000, memoryBytes: 268_435_456, timezone: 'Europe/Berlin', fill: { window: '02:00-06:00', bytesPerSec: 50_000_000 },
      },
      {
        id: 'edge-b1', isp: 'isp-b', url: 'http://127.0.0.1:8102', adminUrl: 'http://127.0.0.1:9102', dataDir: '/abs/edge-b1',
        diskBytes: 1_000_000, memoryBytes: 1_000_000,
      },
    ],
  };
}

/** Applies `mutate` to a good cluster and returns the ConfigError it causes. */
function errorOf(mutate: (c: Record<string, any>) => void): ConfigError {
  const c = good();
  mutate(c);
  try {
    validateCluster(c, '/base');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('validateCluster', () => {
  it('accepts the first design example cluster file and fills defaults', () => {
    const c = validateCluster(good(), '/base');
    expect(c.signing.required).toBe(true);
    expect(c.edges[0]!.dataDir).toBe('/base/data/edge-a1');
    expect(c.edges[1]!.dataDir).toBe('/abs/edge-b1');
    expect(c.edges[1]!.timezone).toBe('UTC');
    expect(c.edges[1]!.fill.window).toBe('02:00-06:00');
    expect(c.edges[0]!.sliceBytes).toBe(DEFAULT_SLICE_BYTES);
    expect(c.admin).toEqual({ openHealth: true, openMetrics: false });
    expect(c.log.level).toBe('info');
    expect(c.baseDir).toBe('/base');
  });

  // [what is wrong, mutation, field named, problem matcher]
  const cases: [string, (c: Record<string, any>) => void, string, RegExp][] = [
    ['not an object', (c) => { for (const k of Object.keys(c)) delete c[k]; Object.assign(c, { signing: 5 }); }, 'signing', /object/],
    ['missing signing.activeKey', (c) => delete c.signing.activeKey, 'signing.activeKey', /non-empty string/],
    ['activeKey not among the keys', (c) => (c.signing.activeKey = 'k7'), 'signing.activeKey', /k7/],
    ['no keys', (c) => (c.signing.keys = {}), 'signing.keys', /at least one/],
    ['short secret', (c) => (c.signing.keys.k1 = 'short'), 'signing.keys.k1', /16 characters/],
    ['bad key id', (c) => (c.signing.keys['bad key'] = 'x'.repeat(20)), 'signing.keys.bad key', /letters/],
    ['ttl zero', (c) => (c.signing.ttlSeconds = 0), 'signing.ttlSeconds', /positive integer/],
    ['required not boolean', (c) => (c.signing.required = 'no'), 'signing.required', /true or false/],
    ['origin url not a URL', (c) => (c.origin.url = 'nope'), 'origin.url', /not a URL/],
    ['origin url ftp', (c) => (c.origin.url = 'ftp://x'), 'origin.url', /http/],
    ['missing origin.dataDir', (c) => delete c.origin.dataDir, 'origin.dataDir', /non-empty/],
    ['bad trusted proxy', (c) => (c.steering.trustedProxies = ['1.2.3']), 'steering.trustedProxies[0]', /prefix/],
    ['threshold ratio > 1', (c) => (c.steering.thresholds = { maxErrorRatio: 2 }), 'steering.thresholds.maxErrorRatio', /0 to 1/],
    ['bad prefix address', (c) => (c.isps[0].prefixes[1] = '10.1.0/16'), 'isps[0].prefixes[1]', /not an IPv4 or IPv6/],
    ['prefix length too long v4', (c) => (c.isps[1].prefixes[0] = '127.2.0.0/33'), 'isps[1].prefixes[0]', /0-32/],
    ['prefix length too long v6', (c) => (c.isps[0].prefixes[2] = '2001:db8::/129'), 'isps[0].prefixes[2]', /0-128/],
    ['prefix length not a number', (c) => (c.isps[0].prefixes[0] = '127.0.0.0/x'), 'isps[0].prefixes[0]', /prefix length/],
    ['prefixes not an array', (c) => (c.isps[0].prefixes = '127.0.0.0/8'), 'isps[0].prefixes', /array/],
    ['duplicate isp id', (c) => (c.isps[1].id = 'isp-a'), 'isps[1].id', /used twice/],
    ['unknown defaultIsp', (c) => (c.defaultIsp = 'isp-z'), 'defaultIsp', /isp-z/],
    ['no edges', (c) => (c.edges = []), 'edges', /at least one/],
    ['duplicate edge id', (c) => (c.edges[1].id = 'edge-a1'), 'edges[1].id', /used twice/],
    ['bad edge id', (c) => (c.edges[0].id = '-edge'), 'edges[0].id', /letters/],
    ['unknown isp', (c) => (c.edges[1].isp = 'isp-q'), 'edges[1].isp', /isp-q/],
    ['bad timezone', (c) => (c.edges[0].timezone = 'Mars/Olympus_Mons'), 'edges[0].timezone', /IANA/],
    ['bad window shape', (c) => (c.edges[0].fill.window = '2:00-6:00'), 'edges[0].fill.window', /02:00-06:00/],
    ['bad window hour', (c) => (c.edges[0].fill.window = '25:00-06:00'), 'edges[0].fill.window', /02:00-06:00/],
    ['bad window minute', (c) => (c.edges[0].fill.window = '02:60-06:00'), 'edges[0].fill.window', /02:00-06:00/],
    ['fill rate zero', (c) => (c.edges[0].fill.bytesPerSec = 0), 'edges[0].fill.bytesPerSec', /positive integer/],
    ['diskBytes negative', (c) => (c.edges[0].diskBytes = -1), 'edges[0].diskBytes', /positive integer/],
    ['diskBytes fractional', (c) => (c.edges[0].diskBytes = 1.5), 'edges[0].diskBytes', /positive integer/],
    ['memoryBytes a string', (c) => (c.edges[1].memoryBytes = '100'), 'edges[1].memoryBytes', /positive integer/],
    ['missing memoryBytes', (c) => delete c.edges[1].memoryBytes, 'edges[1].memoryBytes', /positive integer/],
    ['sliceBytes too small', (c) => (c.edges[0].sliceBytes = 1000), 'edges[0].sliceBytes', /4096/],
    ['dataDir with NUL', (c) => (c.edges[0].dataDir = 'a\0b'), 'edges[0].dataDir', /NUL/],
    ['unknown parent', (c) => (c.edges[0].parent = 'edge-z'), 'edges[0].parent', /edge-z/],
    ['own parent', (c) => (c.edges[0].parent = 'edge-a1'), 'edges[0].parent', /own parent/],
    ['bad log level', (c) => (c.log = { level: 'loud' }), 'log.level', /one of/],
    ['openMetrics not boolean', (c) => (c.admin = { openMetrics: 1 }), 'admin.openMetrics', /true or false/],
  ];
  it.each(cases)('%s → names %s', (_name, mutate, field, problem) => {
    const err = errorOf(mutate);
    expect(err.field).toBe(field);
    expect(err.problem).toMatch(problem);
    expect(err.message).toBe(`${field}: ${err.problem}`);
  });

  it('checkPrefix normalises a bare address to a host prefix', () => {
    expect(checkPrefix('10.0.0.1', 'f')).toBe('10.0.0.1/32');
    expect(checkPrefix('2001:db8::1', 'f')).toBe('2001:db8::1/128');
    expect(checkPrefix('0.0.0.0/0', 'f')).toBe('0.0.0.0/0');
  });
});

describe('loadClusterFile', () => {
  it('loads a good file and resolves data dirs against its folder', () => {
    const dir = tempDir();
    const file = join(dir, 'cluster.json');
    writeFileSync(file, JSON.stringify(good()));
    const c = loadClusterFile(file);
    expect(c.edges[0]!.dataDir).toBe(join(dir, 'data/edge-a1'));
    expect(findEdge(c, 'edge-b1').isp).toBe('isp-b');
  });

  it.each([
    ['non-JSON', '{ "signing": '],
    ['JSON but not an object', '[1, 2]'],
    ['empty', ''],
  ])('a %s file is a one-line ConfigError without a stack trace', (_name, text) => {
    const file = join(tempDir(), 'cluster.json');
    writeFileSync(file, text);
    let err: unknown;
    try {
      loadClusterFile(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg.startsWith('(cluster file): ')).toBe(true);
    expect(msg).not.toMatch(/\n/);
    expect(msg).not.toMatch(/\bat .+:\d+:\d+/);
  });

  it('a missing file names the path and the errno code', () => {
    const file = join(tempDir(), 'missing.json');
    expect(() => loadClusterFile(file)).toThrow(new ConfigError('(cluster file)', `cannot read ${file}: ENOENT`));
  });

  it('findEdge names the unknown id and lists the known ones', () => {
    const c = validateCluster(good(), '/base');
    expect(() => findEdge(c, 'edge-x')).toThrow(/--id: "edge-x" is not an edge.*edge-a1, edge-b1/);
  });

  it('listenAddress reads host and port, defaulting by scheme and unbracketing IPv6', () => {
    expect(listenAddress('http://127.0.0.1:8101')).toEqual({ host: '127.0.0.1', port: 8101 });
    expect(listenAddress('http://example.test')).toEqual({ host: 'example.test', port: 80 });
    expect(listenAddress('https://example.test')).toEqual({ host: 'example.test', port: 443 });
    expect(listenAddress('http://[::1]:9000')).toEqual({ host: '::1', port: 9000 });
  });
});
