import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { FakeClock } from '../../src/common/clock.js';
import { type ClusterConfig, validateCluster } from '../../src/common/config.js';
import {
  MAX_REPORT_SPAN_MS,
  type ServeReport,
  type ServedDay,
  addReport,
  checkServeReport,
  fileWeights,
  parseServeReport,
} from '../../src/origin/file-weights.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { REPORT_PATH, REPORT_SIGNATURE_HEADER, signReport } from '../../src/common/serve-report-wire.js';
import { FIXTURES, ORIGIN_ADMIN_TOKEN, type RunningOrigin, authHeader, originTempDir, startTestOrigin } from '../helpers/origin-harness.js';
import { join } from 'node:path';

const SLICE = 65_536;
const NOW = Date.parse('2024-06-03T12:00:00Z');

function report(over: Partial<ServeReport> = {}): ServeReport {
  return { edgeId: 'edge-a1', instance: 'i1', seq: 1, from: NOW - 60_000, to: NOW, sliceBytes: SLICE, titles: [], ...over };
}

/** A catalog of one segment title (3 files of 1000 bytes) and one single-file title of 4.5 slices. */
const SIZES: Record<string, number> = { 'seg/a.m4s': 1000, 'seg/b.m4s': 1000, 'seg/c.m4s': 1000, 'one/f.mp4': 4.5 * SLICE };
const fileSize = (title: string, file: string) => SIZES[`${title}/${file}`];

describe('file weights from serve reports (pure)', () => {
  it('a segment read by a share of the plays weighs that share', () => {
    const day: ServedDay = {};
    addReport(
      day,
      report({
        titles: [
          {
            title: 'seg',
            plays: 10,
            files: [
              { file: 'a.m4s', requests: 10, bytes: 10_000 },
              { file: 'b.m4s', requests: 6, bytes: 6_000 },
              { file: 'c.m4s', requests: 3, bytes: 3_000 },
            ],
          },
        ],
      }),
      SLICE,
      fileSize,
    );
    const w = fileWeights([['2024-06-03', day]], '2024-06-04', { halfLifeDays: 2, sliceBytes: SLICE, fileSize });
    expect(w.weightOf('seg', 'a.m4s')).toBeCloseTo(1);
    expect(w.weightOf('seg', 'b.m4s')).toBeCloseTo(0.6);
    expect(w.weightOf('seg', 'c.m4s')).toBeCloseTo(0.3);
    expect(w.weightOf('other', 'x')).toBeUndefined();
    expect(w.titles()).toEqual(['seg']);
  });

  it('a single-file title is weighted per slice: the share of plays that reach each slice', () => {
    const day: ServedDay = {};
    // 10 plays: all read slice 0, 5 read slices 0-1, 2 read everything (4.5 slices).
    const slices = [10 * SLICE, 5 * SLICE, 2 * SLICE, 2 * SLICE, 2 * (SLICE / 2)];
    const bytes = slices.reduce((a, b) => a + b, 0);
    addReport(day, report({ titles: [{ title: 'one', plays: 10, files: [{ file: 'f.mp4', requests: 17, bytes, slices }] }] }), SLICE, fileSize);
    const w = fileWeights([['2024-06-03', day]], '2024-06-03', { halfLifeDays: 2, sliceBytes: SLICE, fileSize });
    expect(w.sliceWeights('one', 'f.mp4')!.map((x) => Number(x.toFixed(3)))).toEqual([1, 0.5, 0.2, 0.2, 0.2]);
    expect(w.weightOf('one', 'f.mp4')).toBeCloseTo(bytes / (4.5 * SLICE) / 10);
  });

  it('an edge with other slices is moved into the store\'s unit', () => {
    const day: ServedDay = {};
    // The edge's slices are twice ours: its slice 0 (2 of ours) read whole by 4 plays.
    addReport(
      day,
      report({ sliceBytes: 2 * SLICE, titles: [{ title: 'one', plays: 4, files: [{ file: 'f.mp4', requests: 4, bytes: 8 * SLICE, slices: [8 * SLICE] }] }] }),
      SLICE,
      fileSize,
    );
    expect(day.one!.files['f.mp4']!.slices).toEqual([4 * SLICE, 4 * SLICE]);
  });

  it('days weigh half one half-life later, like plays', () => {
    const mk = (reads: number): ServedDay => ({ seg: { plays: 10, files: { 'a.m4s': { requests: reads, bytes: reads * 1000 } } } });
    // Yesterday every play read a.m4s, three half-lives ago none did: mostly yesterday's.
    const w = fileWeights(
      [
        ['2024-06-02', mk(10)],
        ['2024-05-27', mk(0)],
      ],
      '2024-06-03',
      { halfLifeDays: 2, sliceBytes: SLICE, fileSize },
    );
    const a = Math.pow(0.5, 1 / 2);
    const b = Math.pow(0.5, 7 / 2);
    expect(w.weightOf('seg', 'a.m4s')).toBeCloseTo((a * 10) / (a * 10 + b * 10));
  });

  it("steering's confirmed plays divide the reads, not the play ids clients put in URLs", () => {
    // A client invented 90 play ids (one request each for a byte): the edge counted 100 plays.
    const day: ServedDay = { seg: { plays: 100, files: { 'a.m4s': { requests: 100, bytes: 10 * 1000 + 90 } } } };
    const opts = { halfLifeDays: 2, sliceBytes: SLICE, fileSize };
    expect(fileWeights([['2024-06-03', day]], '2024-06-03', opts).weightOf('seg', 'a.m4s')).toBeCloseTo(0.1009);
    const w = fileWeights([['2024-06-03', day]], '2024-06-03', { ...opts, plays: (d, t) => (d === '2024-06-03' && t === 'seg' ? 10 : undefined) });
    expect(w.weightOf('seg', 'a.m4s')).toBe(1);
  });

  it('too few plays behind a title: no weights (the planner places it whole)', () => {
    const day: ServedDay = { seg: { plays: 2, files: { 'a.m4s': { requests: 2, bytes: 2000 } } } };
    const w = fileWeights([['2024-06-03', day]], '2024-06-03', { halfLifeDays: 2, sliceBytes: SLICE, fileSize });
    expect(w.weightOf('seg', 'a.m4s')).toBeUndefined();
  });

  it('without play ids the most-read file stands in for the plays: no weight above 1', () => {
    const day: ServedDay = { seg: { plays: 0, files: { 'a.m4s': { requests: 8, bytes: 8000 }, 'b.m4s': { requests: 2, bytes: 2000 } } } };
    const w = fileWeights([['2024-06-03', day]], '2024-06-03', { halfLifeDays: 2, sliceBytes: SLICE, fileSize });
    expect(w.weightOf('seg', 'a.m4s')).toBe(1);
    expect(w.weightOf('seg', 'b.m4s')).toBeCloseTo(0.25);
  });
});

describe('serve report checks (pure)', () => {
  const facts = { isEdge: (id: string) => id === 'edge-a1', fileSize, now: NOW };
  const one = (files: ServeReport['titles'][number]['files'], plays = 1) => report({ titles: [{ title: 'seg', plays, files }] });

  it('refuses what no edge could have served', () => {
    const cases: [ServeReport, string][] = [
      [one([{ file: 'a.m4s', requests: 1, bytes: 1001 }]), '1001 bytes in 1 requests of a 1000-byte file'],
      [one([{ file: 'a.m4s', requests: 1, bytes: 0 }], 2), '2 plays in 1 requests'],
      [report({ titles: [{ title: 'one', plays: 1, files: [{ file: 'f.mp4', requests: 1, bytes: 10, slices: [5] }] }] }), 'slices sum to 5'],
      [report({ titles: [{ title: 'one', plays: 1, files: [{ file: 'f.mp4', requests: 1, bytes: SLICE + 1, slices: [SLICE + 1] }] }] }), 'slice 0 sent'],
      [report({ titles: [{ title: 'one', plays: 1, files: [{ file: 'f.mp4', requests: 1, bytes: 0, slices: [0, 0, 0, 0, 0, 0] }] }] }), '6 slices of a 5-slice file'],
      [report({ from: NOW - MAX_REPORT_SPAN_MS - 1 }), 'the period is'],
      [report({ from: NOW - 1000, titles: [{ title: 'one', plays: 1, files: [{ file: 'f.mp4', requests: 1e6, bytes: 1e6 * 4.5 * SLICE }] }] }), 'bytes in 1 s'],
    ];
    for (const [r, detail] of cases) {
      const v = checkServeReport(r, facts);
      expect(v.ok, detail).toBe(false);
      if (!v.ok) {
        expect(v.reason).toBe('impossible numbers');
        expect(v.detail).toContain(detail);
      }
    }
  });

  it('refuses strangers, stale reports and replays; skips files the catalog lost', () => {
    expect(checkServeReport(report({ edgeId: 'edge-zz' }), facts)).toMatchObject({ ok: false, reason: 'unknown edge' });
    expect(checkServeReport(report({ from: NOW - 700_000, to: NOW - 600_000 }), facts)).toMatchObject({ ok: false, reason: 'stale' });
    expect(checkServeReport(report({ seq: 3 }), { ...facts, previous: { seq: 3, to: NOW - 60_000 } })).toMatchObject({ ok: false, reason: 'replayed' });
    expect(checkServeReport(report({ seq: 4 }), { ...facts, previous: { seq: 3, to: NOW - 30_000 } })).toMatchObject({ ok: false, reason: 'replayed' });
    expect(checkServeReport(report({ seq: 4 }), { ...facts, previous: { seq: 3, to: NOW - 60_000 } })).toEqual({ ok: true, unknownFiles: 0 });
    expect(checkServeReport(one([{ file: 'gone.m4s', requests: 1, bytes: 99 }]), facts)).toEqual({ ok: true, unknownFiles: 1 });
  });

  it('the shape: negative, fractional and missing numbers are named', () => {
    const bad = (body: unknown) => {
      const p = parseServeReport(body);
      return p.ok ? 'ok' : p.error;
    };
    const good = report({ titles: [{ title: 'seg', plays: 1, files: [{ file: 'a.m4s', requests: 1, bytes: 5 }] }] });
    expect(bad(good)).toBe('ok');
    expect(bad({ ...good, seq: 0 })).toMatch(/^seq:/);
    expect(bad({ ...good, titles: [{ title: 'seg', plays: -1, files: [] }] })).toMatch(/^titles\[0\]\.plays:/);
    expect(bad({ ...good, titles: [{ title: 'seg', plays: 1, files: [{ file: 'a.m4s', requests: 1.5, bytes: 5 }] }] })).toMatch(/requests: must be a count/);
    expect(bad({ ...good, titles: [{ title: 'seg', plays: 1, files: [{ file: 'a.m4s', requests: 1, bytes: 5, slices: [-5] }] }] })).toMatch(/slices: must be an array of counts/);
    expect(bad({ ...good, titles: [good.titles[0], good.titles[0]] })).toMatch(/appears twice/);
    expect(bad([])).toMatch(/JSON object/);
  });
});

describe('POST /v1/served on a real origin', () => {
  let config: ClusterConfig;
  let origin: RunningOrigin;
  const clock = new FakeClock(NOW);
  const KEYS = { k1: 'origin-test-secret-0123456789' };
  let size360 = 0;

  beforeAll(async () => {
    config = validateCluster(
      {
        signing: { keys: KEYS, activeKey: 'k1' },
        origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'origin' },
        steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
        isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
        edges: [{ id: 'edge-a1', isp: 'isp-a', url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'e1', diskBytes: 1e8, memoryBytes: 1e7, sliceBytes: SLICE }],
        log: { level: 'silent' },
      },
      originTempDir(),
    );
    const entry = await ingestTitle(config, 'bytes', join(FIXTURES, 'hls-bytes'));
    size360 = entry.files.find((f) => f.path === 'stream_360p.mp4')!.size;
    origin = await startTestOrigin(config, { clock });
  });
  afterAll(async () => {
    await origin?.close();
  });

  let seq = 0;
  /** A report of `plays` plays reading the first `slices` slices of stream_360p.mp4 each. */
  function body(plays: number, slices: number, over: Partial<ServeReport> = {}): ServeReport {
    const per = Array.from({ length: Math.ceil(size360 / SLICE) }, (_, i) => (i < slices ? Math.min(SLICE, size360 - i * SLICE) * plays : 0));
    const bytes = per.reduce((a, b) => a + b, 0);
    return report({ seq: ++seq, from: clock.now() - 10_000, to: clock.now(), titles: [{ title: 'bytes', plays, files: [{ file: 'stream_360p.mp4', requests: plays * slices, bytes, slices: per }] }], ...over });
  }
  async function post(r: unknown, sig?: string, token = ORIGIN_ADMIN_TOKEN) {
    const text = JSON.stringify(r);
    const edgeId = (r as ServeReport).edgeId;
    const res = await request(`${origin.adminUrl}${REPORT_PATH}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        [REPORT_SIGNATURE_HEADER]: sig ?? signReport(KEYS, 'k1', edgeId, text),
      },
      body: text,
    });
    return { status: res.statusCode, text: await res.body.text() };
  }
  async function outcomes(): Promise<Record<string, number>> {
    const res = await request(`${origin.adminUrl}/metrics`, { headers: authHeader });
    const out: Record<string, number> = {};
    for (const m of (await res.body.text()).matchAll(/^reelcdn_origin_serve_reports_total\{outcome="([^"]+)"\} (\d+)/gm)) out[m[1]!] = Number(m[2]);
    return out;
  }

  it('an edge\'s signed report is taken and becomes weights', async () => {
    expect(await post(body(20, 2))).toEqual({ status: 204, text: '' });
    clock.advance(11_000);
    expect(await post(body(20, 1))).toEqual({ status: 204, text: '' });
    const w = origin.server.fileWeights();
    // 40 plays: all read slice 0, half read slice 1, none the rest.
    expect(w.sliceWeights('bytes', 'stream_360p.mp4')!.map((x) => Number(x.toFixed(3)))).toEqual([1, 0.5]); // as long as the last slice anyone read
    expect((await outcomes()).accepted).toBe(2);
  });

  it('a forged per-file report from a non-edge is refused, counted, and moves no weight', async () => {
    const before = origin.server.fileWeights().sliceWeights('bytes', 'stream_360p.mp4');
    clock.advance(11_000);
    const forged = body(500, 4);
    // No admin token: the admin port's guard.
    expect((await post(forged, undefined, 'wrong')).status).toBe(401);
    // A MAC with a key the cluster does not have; none at all; a MAC over other bytes.
    expect(await post(forged, signReport({ kx: 'guessed' }, 'kx', 'edge-a1', JSON.stringify(forged)))).toMatchObject({ status: 403, text: expect.stringContaining('bad signature') });
    expect((await post(forged, 'k=k1,t=' + 'A'.repeat(43))).status).toBe(403);
    expect((await post(forged, signReport(KEYS, 'k1', 'edge-a1', JSON.stringify({ ...forged, seq: 999 })))).status).toBe(403);
    // Signed, but for an edge the cluster file does not have.
    expect(await post({ ...forged, edgeId: 'edge-zz' })).toMatchObject({ status: 403, text: expect.stringContaining('unknown edge') });
    // An edge's MAC over numbers no edge serves: more bytes than the file times the requests.
    const inflated = { ...forged, titles: [{ ...forged.titles[0]!, files: [{ ...forged.titles[0]!.files[0]!, requests: 1 }], plays: 1 }] };
    expect(await post(inflated)).toMatchObject({ status: 422, text: expect.stringContaining('impossible numbers') });
    // Negative numbers never get as far.
    expect((await post({ ...forged, titles: [{ title: 'bytes', plays: -3, files: [] }] })).status).toBe(400);
    expect(origin.server.fileWeights().sliceWeights('bytes', 'stream_360p.mp4')).toEqual(before);
    expect(await outcomes()).toMatchObject({ accepted: 2, 'bad signature': 3, 'unknown edge': 1, 'impossible numbers': 1, malformed: 1 });
  });

  it('a report replayed is refused', async () => {
    clock.advance(11_000);
    const r = body(3, 1);
    expect((await post(r)).status).toBe(204);
    expect(await post(r)).toMatchObject({ status: 409, text: expect.stringContaining('replayed') });
    const stale = body(3, 1, { from: clock.now() - 3_600_000, to: clock.now() - 3_000_000 });
    expect(await post(stale)).toMatchObject({ status: 403, text: expect.stringContaining('stale') });
  });

  it('the sums survive a restart (served.json)', async () => {
    const before = origin.server.fileWeights().sliceWeights('bytes', 'stream_360p.mp4');
    await origin.close();
    origin = await startTestOrigin(config, { clock });
    expect(origin.server.fileWeights().sliceWeights('bytes', 'stream_360p.mp4')).toEqual(before);
  });
});
