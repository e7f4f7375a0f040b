import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadClusterFile, validateCluster } from '../../src/common/config.js';
import { tempDir } from '../helpers/cluster.js';

const SECRET_1 = 'k1-secret-0123456789abcdef';
const SECRET_2 = 'k2-secret-0123456789abcdef';

function cluster(signing: Record<string, unknown>): Record<string, unknown> {
  return {
    signing: { activeKey: 'k1', ttlSeconds: 3600, ...signing },
    origin: { url: 'http://127.0.0.1:7000', adminUrl: 'http://127.0.0.1:7001', dataDir: 'data/origin' },
    steering: { url: 'http://127.0.0.1:8080', adminUrl: 'http://127.0.0.1:8081' },
    isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
    edges: [{ id: 'edge-a1', isp: 'isp-a', url: 'http://127.0.0.1:8101', adminUrl: 'http://127.0.0.1:9101', dataDir: 'e', diskBytes: 1e6, memoryBytes: 1e6 }],
  };
}

/** Writes `data` to `path` with exactly `mode` (chmod after the write: the umask does not get a say). */
function writeWithMode(path: string, data: unknown, mode: number): string {
  writeFileSync(path, typeof data === 'string' ? data : JSON.stringify(data));
  chmodSync(path, mode);
  return path;
}

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('signing.keysFile', () => {
  it('reads the keys from a 0600 file named relative to the cluster file', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'secrets'));
    writeWithMode(join(dir, 'secrets', 'keys.json'), { k1: SECRET_1, k2: SECRET_2 }, 0o600);
    const file = writeWithMode(join(dir, 'cluster.json'), cluster({ keysFile: 'secrets/keys.json' }), 0o644);
    const c = loadClusterFile(file);
    expect(c.signing.keys).toEqual({ k1: SECRET_1, k2: SECRET_2 });
    expect(c.signing.activeKey).toBe('k1');
    expect(c.signing.keysFile).toBe(join(dir, 'secrets', 'keys.json'));
    // the secrets are elsewhere: a readable cluster file is nothing to warn about
    expect(c.warnings).toEqual([]);
  });

  it('takes an absolute path as it is', () => {
    const keys = writeWithMode(join(tempDir(), 'keys.json'), { k1: SECRET_1 }, 0o400);
    const c = validateCluster(cluster({ keysFile: keys }), '/elsewhere');
    expect(c.signing.keys).toEqual({ k1: SECRET_1 });
  });

  it.each([
    ['world readable', 0o644, '0644'],
    ['group readable', 0o640, '0640'],
    ['world readable only', 0o604, '0604'],
  ])('refuses a %s keys file at start, naming the field, the file and its mode', (_name, mode, shown) => {
    const dir = tempDir();
    const keys = writeWithMode(join(dir, 'keys.json'), { k1: SECRET_1 }, mode);
    const err = configErrorOf(() => validateCluster(cluster({ keysFile: 'keys.json' }), dir));
    expect(err.field).toBe('signing.keysFile');
    expect(err.problem).toContain(keys);
    expect(err.problem).toContain(shown);
    expect(err.problem).toMatch(/readable by group or others/);
    expect(err.message).not.toContain(SECRET_1);
  });

  it.each<[string, unknown, RegExp]>([
    ['not JSON', '{"k1": ', /not valid JSON/],
    ['not an object', '["x"]', /object of keyId → secret/],
    ['empty', {}, /at least one key/],
    ['a short secret', { k1: 'short' }, /"k1".*16 characters/],
    ['a bad key id', { 'bad key': SECRET_1 }, /"bad key".*letters/],
    ['a secret that is not a string', { k1: 12345 }, /"k1".*string/],
  ])('refuses a keys file that is %s, naming the field and never echoing a secret', (_name, content, problem) => {
    const dir = tempDir();
    writeWithMode(join(dir, 'keys.json'), content, 0o600);
    const err = configErrorOf(() => validateCluster(cluster({ keysFile: 'keys.json' }), dir));
    expect(err.field).toBe('signing.keysFile');
    expect(err.problem).toMatch(problem);
    expect(err.message).not.toContain(SECRET_1);
    expect(err.message).not.toMatch(/\n/);
  });

  it('names the field and the errno code when the keys file is missing', () => {
    const dir = tempDir();
    const err = configErrorOf(() => validateCluster(cluster({ keysFile: 'nope.json' }), dir));
    expect(err.message).toBe(`signing.keysFile: cannot read ${join(dir, 'nope.json')}: ENOENT`);
  });

  it('checks activeKey against the keys from the file', () => {
    const dir = tempDir();
    writeWithMode(join(dir, 'keys.json'), { k2: SECRET_2 }, 0o600);
    const err = configErrorOf(() => validateCluster(cluster({ keysFile: 'keys.json' }), dir));
    expect(err.field).toBe('signing.activeKey');
    expect(err.problem).toMatch(/k1/);
  });

  it('takes only a key the file holds as activeKey, not a name every object has', () => {
    const dir = tempDir();
    writeWithMode(join(dir, 'keys.json'), { k1: SECRET_1 }, 0o600);
    const raw = cluster({ keysFile: 'keys.json' });
    (raw.signing as Record<string, unknown>).activeKey = 'constructor';
    const err = configErrorOf(() => validateCluster(raw, dir));
    expect(err.message).toBe(`signing.activeKey: "constructor" is not in ${join(dir, 'keys.json')}`);
  });

  it('refuses keys and keysFile together (which one would win is a guess)', () => {
    const dir = tempDir();
    writeWithMode(join(dir, 'keys.json'), { k1: SECRET_1 }, 0o600);
    const err = configErrorOf(() => validateCluster(cluster({ keysFile: 'keys.json', keys: { k1: SECRET_1 } }), dir));
    expect(err.field).toBe('signing.keysFile');
    expect(err.problem).toMatch(/not both/);
  });

  it('asks for one of the two when neither is there', () => {
    const err = configErrorOf(() => validateCluster(cluster({}), tempDir()));
    expect(err.field).toBe('signing.keys');
    expect(err.problem).toMatch(/keysFile/);
  });
});

describe('inline signing.keys (existing cluster files)', () => {
  it('still work, without a warning when only the owner can read the cluster file', () => {
    const file = writeWithMode(join(tempDir(), 'cluster.json'), cluster({ keys: { k1: SECRET_1 } }), 0o600);
    const c = loadClusterFile(file);
    expect(c.signing.keys).toEqual({ k1: SECRET_1 });
    expect(c.signing.keysFile).toBeUndefined();
    expect(c.warnings).toEqual([]);
  });

  it('still work in a group/world readable cluster file, with a warning naming the file, its mode and the fix', () => {
    const file = writeWithMode(join(tempDir(), 'cluster.json'), cluster({ keys: { k1: SECRET_1 } }), 0o644);
    const c = loadClusterFile(file);
    expect(c.signing.keys).toEqual({ k1: SECRET_1 });
    expect(c.warnings).toHaveLength(1);
    expect(c.warnings![0]).toContain(file);
    expect(c.warnings![0]).toContain('0644');
    expect(c.warnings![0]).toMatch(/signing\.keysFile/);
    expect(c.warnings![0]).not.toContain(SECRET_1);
  });
});

describe('a cluster file that is not valid JSON', () => {
  it('says where, never what: the text around the error may be an inline secret', () => {
    const dir = tempDir();
    const file = join(dir, 'cluster.json');
    writeFileSync(file, '{\n  "signing": { "keys": { "k1": hunter2-super-secret-value } }\n}\n', { mode: 0o600 });
    let message = '';
    try {
      loadClusterFile(file);
    } catch (err) {
      message = (err as ConfigError).message;
    }
    expect(message).toMatch(new RegExp(`^\\(cluster file\\): ${file} is not valid JSON`));
    expect(message).not.toContain('hunter2');
  });
});
