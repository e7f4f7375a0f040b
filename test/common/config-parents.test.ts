import { describe, expect, it } from 'vitest';
import { ConfigError, validateCluster } from '../../src/common/config.js';

/** A cluster of edges with the given parents (id → parent id). */
function withParents(parents: Record<string, string | undefined>, extra: Record<string, Record<string, unknown>> = {}) {
  return {
    signing: { keys: { k1: 'k1-secret-0123456789abcdef' }, activeKey: 'k1' },
    origin: { url: 'http://127.0.0.1:7000', adminUrl: 'http://127.0.0.1:7001', dataDir: 'o' },
    steering: { url: 'http://127.0.0.1:8080', adminUrl: 'http://127.0.0.1:8081' },
    isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
    edges: Object.entries(parents).map(([id, parent], i) => ({
      id,
      isp: 'isp-a',
      url: `http://127.0.0.1:${8100 + i}`,
      adminUrl: `http://127.0.0.1:${9100 + i}`,
      dataDir: id,
      diskBytes: 1e6,
      memoryBytes: 1e6,
      ...(parent === undefined ? {} : { parent }),
      ...extra[id],
    })),
  };
}

function errorOf(raw: unknown): ConfigError {
  try {
    validateCluster(raw, '/base');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('edges[].parent', () => {
  it('accepts a chain that ends at an edge without a parent', () => {
    const c = validateCluster(withParents({ 'edge-a': 'edge-b', 'edge-b': 'edge-c', 'edge-c': undefined, 'edge-d': 'edge-c' }), '/base');
    expect(c.edges.map((e) => e.parent)).toEqual(['edge-b', 'edge-c', undefined, 'edge-c']);
  });

  it.each<[string, Record<string, string | undefined>, string]>([
    ['two edges', { 'edge-x': undefined, 'edge-a': 'edge-b', 'edge-b': 'edge-a' }, 'edges[1].parent: cycle edge-a → edge-b → edge-a'],
    ['three edges', { 'edge-a': 'edge-b', 'edge-b': 'edge-c', 'edge-c': 'edge-a' }, 'edges[0].parent: cycle edge-a → edge-b → edge-c → edge-a'],
    // edge-d only leads into the cycle; the error names an edge on it
    ['a cycle reached through a chain', { 'edge-d': 'edge-a', 'edge-a': 'edge-b', 'edge-b': 'edge-a' }, 'edges[1].parent: cycle edge-a → edge-b → edge-a'],
  ])('refuses a parent cycle of %s, naming the field and the cycle', (_name, parents, message) => {
    expect(errorOf(withParents(parents)).message).toBe(message);
  });

  it('refuses an edge that is its own parent', () => {
    const err = errorOf(withParents({ 'edge-a': undefined, 'edge-b': 'edge-b' }));
    expect(err.field).toBe('edges[1].parent');
    expect(err.problem).toMatch(/own parent/);
  });

  it('refuses a parent that is not an edge', () => {
    const err = errorOf(withParents({ 'edge-a': 'edge-q' }));
    expect(err.message).toBe('edges[0].parent: "edge-q" is not an edge id');
  });
});

describe('edges[].parentBreaker', () => {
  it('defaults to 3 failures and a 5 s cool-down, and takes its own values', () => {
    const c = validateCluster(
      withParents({ 'edge-a': 'edge-b', 'edge-b': undefined, 'edge-c': 'edge-b' }, { 'edge-c': { parentBreaker: { failures: 1, coolDownMs: 250 } } }),
      '/base',
    );
    expect(c.edges[0]!.parentBreaker).toEqual({ failures: 3, coolDownMs: 5000 });
    expect(c.edges[2]!.parentBreaker).toEqual({ failures: 1, coolDownMs: 250 });
  });

  it.each<[string, unknown, string]>([
    ['not an object', 3, 'edges[0].parentBreaker'],
    ['zero failures', { failures: 0 }, 'edges[0].parentBreaker.failures'],
    ['a fractional cool-down', { coolDownMs: 1.5 }, 'edges[0].parentBreaker.coolDownMs'],
  ])('refuses %s, naming the field', (_name, parentBreaker, field) => {
    const err = errorOf(withParents({ 'edge-a': 'edge-b', 'edge-b': undefined }, { 'edge-a': { parentBreaker } }));
    expect(err.field).toBe(field);
  });
});
