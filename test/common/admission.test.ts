import { describe, expect, it } from 'vitest';
import { admitConnection } from '../../src/common/admission.js';
import { ConfigError, DEFAULT_HTTP_LIMITS } from '../../src/common/config.js';
import { testCluster } from '../helpers/cluster.js';

describe('connection admission', () => {
  it.each([
    ['accepts under the cap', 2, 3, undefined, { kind: 'accept' }],
    ['accepts under the cap even with idle connections', 2, 3, 'idle-1', { kind: 'accept' }],
    ['sheds the longest-idle connection at the cap', 3, 3, 'idle-1', { kind: 'shed-idle', victim: 'idle-1' }],
    ['refuses at the cap with nothing idle', 3, 3, undefined, { kind: 'refuse' }],
    ['refuses past the cap with nothing idle', 9, 3, undefined, { kind: 'refuse' }],
  ] as const)('%s', (_name, open, max, idle, verdict) => {
    expect(admitConnection<string>(open, max, idle)).toEqual(verdict);
  });
});

describe('cluster file: http', () => {
  it('itDefaultsEveryLimitWhenTheSectionIsAbsent', () => {
    expect(testCluster().http).toEqual(DEFAULT_HTTP_LIMITS);
  });

  it('itTakesEachFieldOnItsOwn', () => {
    const c = testCluster({}, { http: { maxConnections: 100, keepAliveTimeoutMs: 5000 } });
    expect(c.http).toEqual({ ...DEFAULT_HTTP_LIMITS, maxConnections: 100, keepAliveTimeoutMs: 5000 });
  });

  it.each([
    [{ maxConnections: 0 }, 'http.maxConnections: must be a positive integer'],
    [{ headersTimeoutMs: 'soon' }, 'http.headersTimeoutMs: must be a positive integer'],
    [{ headersTimeoutMs: 60_000 }, 'http.headersTimeoutMs: must not exceed http.requestTimeoutMs (30000)'],
    [{ overloadSamples: 1.5 }, 'http.overloadSamples: must be a positive integer'],
  ])('itNamesTheFieldOf %j', (http, message) => {
    expect(() => testCluster({}, { http })).toThrow(ConfigError);
    expect(() => testCluster({}, { http })).toThrow(message);
  });

  it('itRefusesANonObject', () => {
    expect(() => testCluster({}, { http: 5 })).toThrow('http: must be an object');
  });
});
