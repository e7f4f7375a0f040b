import { describe, expect, it } from 'vitest';
import { ConfigError, validateCluster } from '../../src/common/config.js';

const cluster = (steering: Record<string, unknown> = {}) => ({
  signing: { keys: { k1: 'config-plays-secret-0123456789' }, activeKey: 'k1' },
  origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:2', dataDir: 'origin' },
  steering: { url: 'http://127.0.0.1:3', adminUrl: 'http://127.0.0.1:4', ...steering },
  isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
  edges: [{ id: 'e1', isp: 'isp-a', url: 'http://127.0.0.1:5', adminUrl: 'http://127.0.0.1:6', dataDir: 'e1', diskBytes: 1e6, memoryBytes: 1e6 }],
});

describe('cluster file: play counting', () => {
  it('itDefaultsThePlayFieldsSoAnExistingFileKeepsWorking', () => {
    const c = validateCluster(cluster(), '/tmp');
    expect(c.steering).toMatchObject({ playDedupSeconds: 3600, playConfirmSeconds: 600, maxTrackedPlays: 100_000 });
  });

  it('itAcceptsAZeroDedupWindow', () => {
    expect(validateCluster(cluster({ playDedupSeconds: 0 }), '/tmp').steering.playDedupSeconds).toBe(0);
  });

  it.each([
    [{ playDedupSeconds: -1 }, 'steering.playDedupSeconds'],
    [{ playDedupSeconds: '1h' }, 'steering.playDedupSeconds'],
    [{ playConfirmSeconds: 0 }, 'steering.playConfirmSeconds'],
    [{ maxTrackedPlays: 1.5 }, 'steering.maxTrackedPlays'],
  ])('itNamesTheBadField %#', (steering, field) => {
    let err: unknown;
    try {
      validateCluster(cluster(steering), '/tmp');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe(field);
  });
});
