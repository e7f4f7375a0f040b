import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/common/clock.js';
import type { ClusterConfig } from '../../src/common/config.js';
import { REPORT_PATH, REPORT_SIGNATURE_HEADER, signReport } from '../../src/common/serve-report-wire.js';
import type { ServeReport } from '../../src/origin/file-weights.js';
import { FillPlans } from '../../src/origin/fill-plans.js';
import type { Plan } from '../../src/origin/fill-planner.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { PlayStore } from '../../src/origin/play-store.js';
import { ServedStore } from '../../src/origin/served-store.js';
import { originStorage } from '../../src/origin/storage/open-storage.js';
import { testCluster } from '../helpers/cluster.js';
import { FIXTURES, ORIGIN_ADMIN_TOKEN, type RunningOrigin, originTempDir, originTestConfig, startTestOrigin } from '../helpers/origin-harness.js';
import { STORAGE_KINDS, useStorage } from '../helpers/origin-storages.js';
import { catalog, held, playsOf, titles } from './fill-plans-fixtures.js';

/**
 * Several origin replicas on one storage (issue 14, P1-3): the edges' serve sums (`served.json`)
 * and the standing fill plan (`fill-standing.json`) live in origin.storage next to the play
 * counts, written over the document each replica read (a conditional write) and merged when
 * another replica saved first — so no replica's sums are lost and every replica plans against
 * the same standing plan (the same manifests for the nodes, whichever replica they ask).
 */
const MB = 1e6;
const DAY = 86_400_000;
const DAY1 = Date.parse('2024-06-01T12:00:00Z');

const version = (p: Plan) => p.manifests.get('edge-a1')!.version;

describe.each(STORAGE_KINDS)('origin replicas sharing %s storage', (kind) => {
  const st = useStorage(kind);
  const origins: RunningOrigin[] = [];
  afterAll(async () => {
    for (const o of origins) await o.close().catch(() => {});
  });

  /** Replica B of replica A's config: the same storage; on S3, a data folder of its own (another pod). */
  const replicaOf = (a: ClusterConfig): ClusterConfig => ({ ...a, origin: { ...a.origin, ...(kind === 's3' ? { dataDir: originTempDir() } : {}) } });

  it('twoReplicasPlanAgainstOneStandingPlanTheFirstSavedForTheDay', async () => {
    const config = st.on(testCluster({ diskBytes: 100 * MB }));
    const clock = new FakeClock(DAY1);
    const plays = await PlayStore.open({ file: join(originTempDir(), 'plays.json'), clock });
    // Replica B saw other plays on day 1 (t18 far ahead): its day-1 plan holds t18, not t17.
    const playsB1 = await PlayStore.open({ file: join(originTempDir(), 'plays.json'), clock });
    plays.record(playsOf(DAY1));
    playsB1.record(playsOf(DAY1, { t18: 400 }));
    let bPlays = playsB1;
    const a = new FillPlans({ config, clock, catalog: () => catalog, plays: () => plays, standing: { storage: originStorage(config.origin) } });
    const bConfig = replicaOf(config);
    const b = new FillPlans({ config: bConfig, clock, catalog: () => catalog, plays: () => bPlays, standing: { storage: originStorage(bConfig.origin) } });
    await Promise.all([a.open(), b.open()]);
    const a1 = await a.current();
    await a.flush();
    const b1 = await b.current();
    await b.flush(); // refused (A saved first), merged, saved
    expect(held(a1)).toEqual(new Set(titles.slice(0, 18)));
    expect(held(b1).has('t18')).toBe(true);

    // Day 2: t18 slightly ahead of t17, inside the band. A rolls over first: its day-1 plan stands.
    clock.advance(DAY);
    plays.record(playsOf(DAY1 + DAY, { t18: 90 }));
    bPlays = plays;
    const a2 = await a.current();
    await a.flush();
    expect(version(a.standingPlan()!)).toBe(version(a1));
    expect(held(a2)).toEqual(held(a1));
    // B rolls over onto its own day-1 plan, finds A's standing plan saved first, takes it and plans again.
    await b.current();
    await b.flush();
    const b2 = await b.current();
    expect(version(b.standingPlan()!)).toBe(version(a1));
    expect(version(b2)).toBe(version(a2));

    // A third replica started on day 2 plans against the same standing plan, read from the storage.
    const cConfig = replicaOf(config);
    const c = new FillPlans({ config: cConfig, clock, catalog: () => catalog, plays: () => plays, standing: { storage: originStorage(cConfig.origin) } });
    await c.open();
    expect(version(await c.current())).toBe(version(a2));
    // Without it, it would plan from scratch and swap t17 for t18: a node would be asked to churn.
    const alone = new FillPlans({ config, clock, catalog: () => catalog, plays: () => plays });
    expect(held(await alone.current()).has('t18')).toBe(true);
    expect(await st.view(config).exists('fill-standing.json')).toBe(true);
    await Promise.all([a.flush(), b.flush(), c.flush(), plays.close(), playsB1.close()]);
  });

  it('twoServedStoresSavingTheSameDocumentLoseNoSums', async () => {
    const config = st.on(originTestConfig());
    const clock = new FakeClock(DAY1);
    const bConfig = replicaOf(config);
    const open = (c: ClusterConfig) => ServedStore.open({ storage: originStorage(c.origin), clock, sliceBytes: 65_536, debounceMs: 1000 });
    const [a, b] = await Promise.all([open(config), open(bConfig)]);
    const report = (instance: string, seq: number, bytes: number): ServeReport => ({
      edgeId: 'edge-a1',
      instance,
      seq,
      from: DAY1 - 10_000,
      to: DAY1,
      sliceBytes: 65_536,
      titles: [{ title: 'movie', plays: 1, files: [{ file: 'f.mp4', requests: 1, bytes, slices: [bytes] }] }],
    });
    const size = () => 65_536;
    for (let round = 1; round <= 5; round++) {
      a.record(report('a', round, 1000), size);
      b.record(report('b', round, 10), size);
      await Promise.all([a.flush(), b.flush()]);
    }
    const reread = await open(config);
    const want = { movie: { plays: 10, files: { 'f.mp4': { requests: 10, bytes: 5050, slices: [5050] } } } };
    expect(reread.dayOf('2024-06-01')).toEqual(want);
    await Promise.all([a.refresh(), b.refresh()]);
    expect(a.dayOf('2024-06-01')).toEqual(want);
    expect(b.dayOf('2024-06-01')).toEqual(want);
  });

  it('countsWhatIsBeingSavedWhileTheWriteIsUnderWay', async () => {
    // A plan made while the counts are being saved must see them: not in the document yet, no longer pending.
    const config = st.on(originTestConfig());
    const clock = new FakeClock(DAY1);
    const real = originStorage(config.origin);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let writing = 0;
    const slow = Object.create(real) as typeof real;
    slow.writeDocument = async (...args) => {
      writing++;
      await held;
      return real.writeDocument(...args);
    };
    const plays = await PlayStore.open({ storage: slow, clock });
    const served = await ServedStore.open({ storage: slow, clock, sliceBytes: 65_536 });
    plays.record([{ title: 'movie', isp: 'isp-a', at: DAY1 }]);
    served.record(
      { edgeId: 'edge-a1', instance: 'i', seq: 1, from: DAY1 - 1000, to: DAY1, sliceBytes: 65_536, titles: [{ title: 'movie', plays: 1, files: [{ file: 'f.mp4', requests: 1, bytes: 10 }] }] },
      () => 100,
    );
    const saved = Promise.all([plays.flush(), served.flush()]);
    for (let i = 0; i < 100 && writing < 2; i++) await new Promise((r) => setTimeout(r, 5));
    expect(writing).toBe(2);
    expect(plays.countsFor('2024-06-01')).toEqual({ 'isp-a': { movie: 1 } });
    expect(plays.daysWithPlays()).toEqual(['2024-06-01']);
    expect(served.dayOf('2024-06-01')).toEqual({ movie: { plays: 1, files: { 'f.mp4': { requests: 1, bytes: 10 } } } });
    release();
    await saved;
    expect(plays.countsFor('2024-06-01')).toEqual({ 'isp-a': { movie: 1 } });
    expect(served.dayOf('2024-06-01')).toEqual({ movie: { plays: 1, files: { 'f.mp4': { requests: 1, bytes: 10 } } } });
  });

  it('twoRealOriginsShareTheServeSumsAndTheStandingPlan', async () => {
    const config = st.on(originTestConfig());
    await ingestTitle(config, 'bytes', join(FIXTURES, 'hls-bytes'));
    const clock = new FakeClock(DAY1);
    const a = await startTestOrigin(config, { clock });
    origins.push(a);
    const b = await startTestOrigin(replicaOf(config), { clock });
    origins.push(b);
    const keys = config.signing.keys;
    const post = async (o: RunningOrigin, r: ServeReport) => {
      const text = JSON.stringify(r);
      const res = await request(`${o.adminUrl}${REPORT_PATH}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ORIGIN_ADMIN_TOKEN}`, 'content-type': 'application/json', [REPORT_SIGNATURE_HEADER]: signReport(keys, config.signing.activeKey, r.edgeId, text) },
        body: text,
      });
      await res.body.dump();
      expect(res.statusCode).toBe(204);
    };
    const sliceBytes = config.edges[0]!.sliceBytes;
    const report = (instance: string, seq: number, plays: number): ServeReport => ({
      edgeId: 'edge-a1',
      instance,
      seq,
      from: clock.now() - 10_000,
      to: clock.now(),
      sliceBytes,
      titles: [{ title: 'bytes', plays, files: [{ file: 'stream_360p.mp4', requests: plays, bytes: 1000 * plays, slices: [1000 * plays] }] }],
    });
    // The edges' reports reach both replicas (one admin Service), saved at the same moments.
    for (let round = 1; round <= 3; round++) {
      clock.advance(11_000);
      await Promise.all([post(a, report('on-a', round, 1)), post(b, report('on-b', round, 2))]);
      await Promise.all([a.server.served().flush(), b.server.served().flush()]);
    }
    await Promise.all([a.server.served().refresh(), b.server.served().refresh()]);
    const want = { bytes: { plays: 9, files: { 'stream_360p.mp4': { requests: 9, bytes: 9000, slices: [9000] } } } };
    expect(a.server.served().dayOf('2024-06-01')).toEqual(want);
    expect(b.server.served().dayOf('2024-06-01')).toEqual(want);
    expect(JSON.parse((await st.view(config).read('served.json'))!.toString()).days['2024-06-01']).toEqual(want);

    // A manifest asked of replica A: its plan is saved in the storage, where replica B finds it.
    const manifest = async (o: RunningOrigin) => {
      const res = await request(`${o.adminUrl}/v1/manifests/edge-a1`, { headers: { authorization: `Bearer ${ORIGIN_ADMIN_TOKEN}` } });
      expect(res.statusCode).toBe(200);
      return ((await res.body.json()) as { version: string }).version;
    };
    const fromA = await manifest(a);
    await a.close();
    origins.splice(origins.indexOf(a), 1);
    const stored = JSON.parse((await st.view(config).read('fill-standing.json'))!.toString()) as { last: { plan: { manifests: Record<string, { version: string }> } } };
    expect(stored.last.plan.manifests['edge-a1']!.version).toBe(fromA);
    expect(await manifest(b)).toBe(fromA);
  });
});
