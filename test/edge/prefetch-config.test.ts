import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_PREFETCH, validateCluster } from '../../src/common/config.js';
import { checkCluster } from '../../src/common/config-check.js';

/** A one-edge cluster file whose edge has `prefetch` (left out when undefined). */
function file(prefetch?: unknown, edge: Record<string, unknown> = {}) {
  return {
    signing: { keys: { k1: 'k1-secret-0123456789abcdef' }, activeKey: 'k1' },
    origin: { url: 'http://127.0.0.1:7000', adminUrl: 'http://127.0.0.1:7001', dataDir: 'o' },
    steering: { url: 'http://127.0.0.1:8080', adminUrl: 'http://127.0.0.1:8081' },
    isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
    edges: [
      {
        id: 'edge-a',
        isp: 'isp-a',
        url: 'http://127.0.0.1:8100',
        adminUrl: 'http://127.0.0.1:9100',
        dataDir: 'edge-a',
        diskBytes: 1e9,
        memoryBytes: 1e8,
        ...(prefetch === undefined ? {} : { prefetch }),
        ...edge,
      },
    ],
  };
}

/** The ConfigError's text starts with the field it names: `edges[0].prefetch.maxConcurrent: must be …`. */
const refusal = (raw: unknown) => () => validateCluster(raw, '/base');

describe('edges[].prefetch', () => {
  it('defaults when left out, and takes each key on its own', () => {
    expect(validateCluster(file(), '/base').edges[0]!.prefetch).toEqual(DEFAULT_PREFETCH);
    expect(DEFAULT_PREFETCH).toEqual({ enabled: true, maxBufferMs: 30_000, maxConcurrent: 16, maxBytesInFlight: 64 * 1024 * 1024 });
    expect(validateCluster(file({ maxConcurrent: 4 }), '/base').edges[0]!.prefetch).toEqual({ ...DEFAULT_PREFETCH, maxConcurrent: 4 });
    expect(validateCluster(file({ enabled: false, maxBufferMs: 10_000 }), '/base').edges[0]!.prefetch).toEqual({ ...DEFAULT_PREFETCH, enabled: false, maxBufferMs: 10_000 });
  });

  it.each([
    [{ enabled: 'yes' }, 'edges[0].prefetch.enabled'],
    [{ maxBufferMs: -1 }, 'edges[0].prefetch.maxBufferMs'],
    [{ maxBufferMs: 1.5 }, 'edges[0].prefetch.maxBufferMs'],
    [{ maxConcurrent: 0 }, 'edges[0].prefetch.maxConcurrent'],
    [{ maxBytesInFlight: '64MiB' }, 'edges[0].prefetch.maxBytesInFlight'],
    [[], 'edges[0].prefetch'],
  ])('refuses %j naming %s', (prefetch, field) => {
    expect(refusal(file(prefetch))).toThrow(ConfigError);
    expect(refusal(file(prefetch))).toThrow(`${field}: `);
  });

  it('refuses a bytes budget below one slice: no prefetch could ever start', () => {
    expect(refusal(file({ maxBytesInFlight: 1000 }, { sliceBytes: 65536 }))).toThrow('edges[0].prefetch.maxBytesInFlight: must be at least sliceBytes (65536)');
  });

  it('reelcdn check refuses an unknown key in it, naming the field', () => {
    const problems = checkCluster(file({ maxBuffer: 1 }), '/base');
    expect(problems.map((p) => p.field)).toContain('edges[0].prefetch.maxBuffer');
    expect(checkCluster(file({ maxBufferMs: 5000 }), '/base')).toEqual([]);
  });
});
