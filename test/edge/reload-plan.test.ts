import { describe, expect, it } from 'vitest';
import { type ClusterConfig, ConfigError, validateCluster } from '../../src/common/config.js';
import { TokenVerifier, signQuery } from '../../src/common/signing.js';
import { planEdgeReload, prepareEdgeReload } from '../../src/edge/reload-plan.js';

function cluster(edit: (raw: any) => void = () => {}): ClusterConfig {
  const raw: any = {
    signing: { keys: { k1: 'plan-k1-0123456789abcdef' }, activeKey: 'k1' },
    origin: { url: 'http://127.0.0.1:9000', adminUrl: 'http://127.0.0.1:9001', dataDir: 'o' },
    steering: { url: 'http://127.0.0.1:9100', adminUrl: 'http://127.0.0.1:9101' },
    isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/8'] }],
    edges: [
      { id: 'parent', isp: 'isp-a', url: 'http://127.0.0.1:9200', adminUrl: 'http://127.0.0.1:9201', dataDir: 'p', diskBytes: 1e9, memoryBytes: 1e7 },
      { id: 'child', isp: 'isp-a', url: 'http://127.0.0.1:9300', adminUrl: 'http://127.0.0.1:9301', dataDir: 'c', diskBytes: 1e9, memoryBytes: 1e7, parent: 'parent' },
    ],
  };
  edit(raw);
  return validateCluster(raw, '/tmp/plan');
}

const view = (config: ClusterConfig, id = 'child') => ({ config, edge: config.edges.find((e) => e.id === id)! });

describe('planEdgeReload', () => {
  it('itTakesLiveFieldsAndNamesRestartOnlyOnesByTheirPlaceInTheNewFile', () => {
    const boot = cluster();
    const next = cluster((r) => {
      // Another edge first: the child is edges[1] → edges[2].
      r.edges.unshift({ id: 'other', isp: 'isp-a', url: 'http://127.0.0.1:9400', adminUrl: 'http://127.0.0.1:9401', dataDir: 'x', diskBytes: 1e9, memoryBytes: 1e7 });
      r.signing.keys.k2 = 'plan-k2-0123456789abcdef';
      r.edges[2].fill = { window: '01:00-02:00' };
      r.edges[2].prefetch = { maxBufferMs: 10_000 };
      r.edges[2].diskBytes = 2e9;
      r.edges[1].url = 'http://127.0.0.1:9250';
      r.origin.url = 'http://127.0.0.1:9050';
      r.admin = { openMetrics: true };
    });
    const plan = planEdgeReload(view(boot), view(boot), next);
    expect(plan.field).toBe('edges[2]');
    expect(plan.applied.sort()).toEqual(['admin', 'edges[2].fill', 'edges[2].prefetch', 'signing']);
    expect(plan.needsRestart.sort()).toEqual(['edges[1].url', 'edges[2].diskBytes', 'origin.url']);
    // Run as before until a restart: the old disk size, origin and parent URLs; the new fill window.
    expect(plan.edge.diskBytes).toBe(1e9);
    expect(plan.edge.fill.window).toBe('01:00-02:00');
    expect(plan.config.origin.url).toBe('http://127.0.0.1:9000');
    expect(plan.config.edges.find((e) => e.id === 'parent')!.url).toBe('http://127.0.0.1:9200');
    expect(plan.config.edges.find((e) => e.id === 'child')).toBe(plan.edge);
  });

  it('itKeepsReportingARestartOnlyChangeUntilTheRestart, and a live one only once', () => {
    const boot = cluster();
    const next = cluster((r) => {
      r.edges[1].dataDir = 'moved';
      r.edges[1].timezone = 'Europe/Paris';
    });
    const first = planEdgeReload(view(boot), view(boot), next);
    expect(first).toMatchObject({ applied: ['edges[1].timezone'], needsRestart: ['edges[1].dataDir'] });
    const again = planEdgeReload(view(boot), { config: first.config, edge: first.edge }, next);
    expect(again).toMatchObject({ applied: [], needsRestart: ['edges[1].dataDir'] });
  });

  it('itRefusesAFileThatNoLongerListsThisEdge', () => {
    const boot = cluster();
    const next = cluster((r) => {
      r.edges.pop();
    });
    expect(() => planEdgeReload(view(boot), view(boot), next)).toThrow(ConfigError);
    expect(() => planEdgeReload(view(boot), view(boot), next)).toThrow(/^edges: "child" is no longer in the cluster file/);
  });
});

describe('prepareEdgeReload', () => {
  const none = { tls: {}, clientTls: undefined };

  it('itRefusesAFillWindowTheFillAgentCannotParseBeforeAnythingIsApplied', () => {
    // A window the file's checks once let through ("24:30"): the fill agent parses it only when
    // it takes it, after keys and certificates were swapped. Prepared, it is refused first.
    const boot = cluster();
    const next = cluster((r) => {
      r.signing.keys.k2 = 'plan-k2-0123456789abcdef';
    });
    next.edges[1] = { ...next.edges[1]!, fill: { ...next.edges[1]!.fill, window: '02:00-24:30' } };
    expect(() => prepareEdgeReload(view(boot), view(boot), none, next)).toThrow(ConfigError);
    expect(() => prepareEdgeReload(view(boot), view(boot), none, next)).toThrow(/^edges\[1\]\.fill\.window: fill window "02:00-24:30" is not a time of day$/);
  });

  it('itPreparesWhatTheEdgeTakesWithoutTouchingTheViewsItWasGiven', () => {
    const boot = cluster();
    const next = cluster((r) => {
      r.signing.keys.k2 = 'plan-k2-0123456789abcdef';
      r.edges[1].fill = { window: '01:00-02:00' };
    });
    const frozen = JSON.stringify(boot);
    const p = prepareEdgeReload(view(boot), view(boot), none, next);
    expect(p).toMatchObject({ field: 'edges[1]', clientTlsChanged: false, tls: {}, clientTls: undefined });
    expect(p.applied.sort()).toEqual(['edges[1].fill', 'signing']);
    expect(JSON.stringify(boot)).toBe(frozen);
    // What a worker is sent survives a structured clone whole.
    expect(structuredClone(p)).toEqual(p);
  });
});

describe('TokenVerifier.setKeys', () => {
  const path = '/c/t/seg.ts';
  const now = 1_700_000_000;
  const q = (keys: Record<string, string>, k: string) => new URLSearchParams(signQuery(keys, k, path, now, 60));

  it('itForgetsWhatItRememberedUnderTheOldKeys: a secret changed under the same id stops the old MAC', () => {
    const old = { k1: 'old-secret-0123456789abcdef' };
    const v = new TokenVerifier(old);
    const t = q(old, 'k1');
    expect(v.verify(path, t.get('e'), t.get('k'), t.get('t'), now).ok).toBe(true);
    const generation = v.generation;
    v.setKeys({ k1: 'new-secret-0123456789abcdef' });
    expect(v.generation).toBeGreaterThan(generation);
    expect(v.verify(path, t.get('e'), t.get('k'), t.get('t'), now)).toEqual({ ok: false, reason: 'bad signature' });
  });

  it('itVerifiesANewKeyAndRefusesADroppedOne', () => {
    const k1 = { k1: 'k1-secret-0123456789abcdef' };
    const k2 = { k2: 'k2-secret-0123456789abcdef' };
    const v = new TokenVerifier(k1);
    const by1 = q(k1, 'k1');
    const by2 = q(k2, 'k2');
    expect(v.verify(path, by2.get('e'), by2.get('k'), by2.get('t'), now)).toEqual({ ok: false, reason: 'unknown key' });
    v.setKeys({ ...k1, ...k2 });
    expect(v.verify(path, by2.get('e'), by2.get('k'), by2.get('t'), now).ok).toBe(true);
    expect(v.verify(path, by1.get('e'), by1.get('k'), by1.get('t'), now).ok).toBe(true);
    v.setKeys(k2);
    expect(v.verify(path, by1.get('e'), by1.get('k'), by1.get('t'), now)).toEqual({ ok: false, reason: 'unknown key' });
  });
});
