import { describe, expect, it } from 'vitest';
import { FakeClock } from '../src/common/clock.js';
import { PlayStore } from '../src/origin/play-store.js';
import { originStorage } from '../src/origin/storage/open-storage.js';
import { type DayCounts, addPlays, parsePlaysBody, pruneDays, utcDay } from '../src/origin/plays.js';
import { authHeader, originTestConfig, startTestOrigin } from './helpers/origin-harness.js';
import { rawRequest } from './helpers/origin-http.js';
import { STORAGE_KINDS, useStorage } from './helpers/origin-storages.js';

const DAY1 = Date.parse('2025-03-01T23:59:59Z');
const DAY2 = Date.parse('2025-03-02T00:00:00Z');

describe('plays, pure', () => {
  it('itCountsPerUtcDayPerIspPerTitle', () => {
    const days = new Map<string, DayCounts>();
    addPlays(days, [
      { title: 'a', isp: 'isp-a', at: DAY1 },
      { title: 'a', isp: 'isp-a', at: DAY1 - 1000 },
      { title: 'b', isp: 'isp-a', at: DAY1 },
      { title: 'a', isp: 'isp-b', at: DAY2 },
    ]);
    expect(Object.fromEntries(days)).toEqual({
      '2025-03-01': { 'isp-a': { a: 2, b: 1 } },
      '2025-03-02': { 'isp-b': { a: 1 } },
    });
    pruneDays(days, '2025-03-02');
    expect([...days.keys()]).toEqual(['2025-03-02']);
    expect(utcDay(DAY2)).toBe('2025-03-02');
  });

  it.each([
    [null, /body must be a JSON object/],
    [[], /body must be a JSON object/],
    [{}, /^plays: must be an array/],
    [{ plays: [{ title: 'a', isp: 'i', at: 1 }, 5] }, /^plays\[1\]: must be an object/],
    [{ plays: [{ isp: 'i', at: 1 }] }, /^plays\[0\]\.title/],
    [{ plays: [{ title: '../x', isp: 'i', at: 1 }] }, /^plays\[0\]\.title/],
    [{ plays: [{ title: 'a', isp: '', at: 1 }] }, /^plays\[0\]\.isp/],
    [{ plays: [{ title: 'a', isp: 'i', at: '2025-01-01' }] }, /^plays\[0\]\.at/],
    [{ plays: [{ title: 'a', isp: 'i', at: 1.5 }] }, /^plays\[0\]\.at/],
    [{ plays: [{ title: 'a', isp: 'i', at: -1 }] }, /^plays\[0\]\.at/],
    [{ plays: Array.from({ length: 10_001 }, () => ({ title: 'a', isp: 'i', at: 1 })) }, /at most 10000/],
  ])('itRefusesTheBadBody %#, naming the field', (body, msg) => {
    const r = parsePlaysBody(body);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(msg);
  });

  it('itAcceptsAGoodBody', () => {
    expect(parsePlaysBody({ plays: [{ title: 'a', isp: 'isp-a', at: DAY1, extra: 1 }] })).toEqual({
      ok: true,
      plays: [{ title: 'a', isp: 'isp-a', at: DAY1 }],
    });
  });
});

// The play store on the origin's two storages: a local folder and an S3 API server.
describe.each(STORAGE_KINDS)('PlayStore on %s storage', (kind) => {
  const st = useStorage(kind);
  const place = () => {
    const config = st.on(originTestConfig());
    return { storage: originStorage(config.origin), view: st.view(config) };
  };

  it('itWritesDebouncedAndReloadsTheSameCounts', async () => {
    const { storage, view } = place();
    const clock = new FakeClock(DAY2);
    const store = await PlayStore.open({ storage, clock, debounceMs: 1000 });
    store.record([{ title: 'a', isp: 'isp-a', at: DAY1 }]);
    store.record([{ title: 'a', isp: 'isp-a', at: DAY2 }]);
    expect(await view.exists('plays.json')).toBe(false);
    clock.advance(1000);
    await store.flush(); // waits for the write the timer started
    expect(await view.exists('plays.json')).toBe(true);

    const again = await PlayStore.open({ storage, clock });
    expect(again.countsFor('2025-03-01')).toEqual({ 'isp-a': { a: 1 } });
    expect(again.countsFor('2025-03-02')).toEqual({ 'isp-a': { a: 1 } });
    expect(again.countsFor('2025-01-01')).toEqual({});
    expect(again.daysWithPlays()).toEqual(['2025-03-01', '2025-03-02']);
  });

  it('itHandsOutCopiesNotItsOwnCounts', async () => {
    const store = await PlayStore.open({ storage: place().storage, clock: new FakeClock(DAY1) });
    store.record([{ title: 'a', isp: 'i', at: DAY1 }]);
    store.countsFor('2025-03-01').i!.a = 99;
    expect(store.countsFor('2025-03-01')).toEqual({ i: { a: 1 } });
  });

  it('itForgetsDaysPastRetention', async () => {
    const clock = new FakeClock(DAY2 + 10 * 86_400_000);
    const store = await PlayStore.open({ storage: place().storage, clock, retainDays: 5 });
    store.record([{ title: 'a', isp: 'i', at: DAY1 }, { title: 'a', isp: 'i', at: clock.now() }]);
    expect(store.daysWithPlays()).toEqual(['2025-03-12']);
  });

  it('itRefusesACorruptFileClearly', async () => {
    const { storage, view } = place();
    await view.write('plays.json', '{"version":1,"days":{"yesterday":{}}}');
    await expect(PlayStore.open({ storage, clock: new FakeClock() })).rejects.toThrow(/plays\.json: days\.yesterday/);
  });

  it('itCountsEveryPlayOfTwoStoresSavingTheSameDocument', async () => {
    // Two origin replicas behind one admin Service: each takes some of steering's plays and saves
    // them over the document it read; the one that saved second merges, never overwrites.
    const { storage } = place();
    const clock = new FakeClock(DAY2);
    const a = await PlayStore.open({ storage, clock, debounceMs: 1000 });
    const b = await PlayStore.open({ storage, clock, debounceMs: 1000 });
    for (let round = 0; round < 5; round++) {
      a.record([{ title: 'movie', isp: 'isp-a', at: DAY2 }]);
      b.record([{ title: 'movie', isp: 'isp-a', at: DAY2 }, { title: 'other', isp: 'isp-b', at: DAY2 }]);
      await Promise.all([a.flush(), b.flush()]);
    }
    const reread = await PlayStore.open({ storage, clock });
    expect(reread.countsFor('2025-03-02')).toEqual({ 'isp-a': { movie: 10 }, 'isp-b': { other: 5 } });
    // Each store has seen the other's saves it merged with; a refresh brings in the rest.
    await a.refresh();
    await b.refresh();
    expect(a.countsFor('2025-03-02')).toEqual(reread.countsFor('2025-03-02'));
    expect(b.countsFor('2025-03-02')).toEqual(reread.countsFor('2025-03-02'));
  });
});

describe.each(STORAGE_KINDS)('POST /v1/plays on %s storage', (kind) => {
  const st = useStorage(kind);
  const post = (url: string, body: unknown, headers: Record<string, string> = authHeader) =>
    rawRequest(url, '/v1/plays', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  it('itCountsPlaysAndKeepsThemAcrossARestart', async () => {
    const config = st.on(originTestConfig());
    const clock = new FakeClock(DAY2);
    const first = await startTestOrigin(config, { clock });
    const ok = await post(first.adminUrl, {
      plays: [
        { title: 'movie', isp: 'isp-a', at: DAY1 },
        { title: 'movie', isp: 'isp-a', at: DAY1 },
        { title: 'other', isp: 'isp-b', at: DAY2 },
      ],
    });
    expect(ok.status).toBe(204);
    expect(first.server.plays().countsFor('2025-03-01')).toEqual({ 'isp-a': { movie: 2 } });
    const metrics = await rawRequest(first.adminUrl, '/metrics', { headers: authHeader });
    expect(metrics.body.toString()).toMatch(/reelcdn_origin_plays_total\{isp="isp-a"\} 2/);
    await first.close();

    expect(JSON.parse((await st.view(config).read('plays.json'))!.toString()).days['2025-03-02']).toEqual({ 'isp-b': { other: 1 } });

    const second = await startTestOrigin(config, { clock });
    try {
      expect(second.server.plays().countsFor('2025-03-01')).toEqual({ 'isp-a': { movie: 2 } });
      expect(second.server.plays().countsFor('2025-03-02')).toEqual({ 'isp-b': { other: 1 } });
    } finally {
      await second.close();
    }
  });

  it('itRefusesABadBodyNamingTheField', async () => {
    const o = await startTestOrigin(st.on(originTestConfig()));
    try {
      const bad = await post(o.adminUrl, { plays: [{ title: 'a', isp: 'isp-a', at: 1 }, { title: 'a', at: 1 }] });
      expect(bad.status).toBe(400);
      expect(bad.body.toString()).toMatch(/plays\[1\]\.isp/);
      const notJson = await post(o.adminUrl, '{"plays": [');
      expect(notJson.status).toBe(400);
      expect(o.server.plays().daysWithPlays()).toEqual([]);
    } finally {
      await o.close();
    }
  });

  it('itRefusesPlaysWithoutTheAdminToken', async () => {
    const o = await startTestOrigin(st.on(originTestConfig()));
    try {
      const r = await post(o.adminUrl, { plays: [] }, {});
      expect(r.status).toBe(401);
    } finally {
      await o.close();
    }
  });
});
