import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { CatalogDocument, TitleEntry } from '../../src/origin/catalog.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { FIXTURES, type RunningOrigin, authHeader, originTestConfig, startTestOrigin } from '../helpers/origin-harness.js';

/**
 * A fill plan of a large catalog takes the planner seconds; the origin makes it in a worker
 * thread, so its `/o/` answers keep coming while the plan is made (issue 13, planning cost).
 * The catalog: one real title, served, and 3,000 synthetic ones (10 renditions × 6 segments,
 * files absent) with a week of plays and serve reports, so the plan is weighted as in production.
 */
const TITLES = 3000;
const DAY = 86_400_000;
const hex = (i: number, k: number) => (i * 100 + k).toString(16).padStart(64, '0');

function bigCatalog(): { entries: TitleEntry[]; plays: Record<string, unknown>; served: Record<string, unknown> } {
  const entries: TitleEntry[] = [];
  for (let i = 0; i < TITLES; i++) {
    const files: TitleEntry['files'] = [{ path: 'master.m3u8', size: 1_000, sha256: hex(i, 99), contentType: 'application/vnd.apple.mpegurl' }];
    for (let r = 0; r < 10; r++) for (let s = 0; s < 6; s++) files.push({ path: `r${r}/seg${s}.m4s`, size: (r + 1) * 1_000_000 + s, sha256: hex(i, r * 10 + s), contentType: 'video/mp4' });
    files.sort((a, b) => (a.path < b.path ? -1 : 1));
    entries.push({ title: `big${i}`, kind: 'hls', manifests: ['master.m3u8'], files, bytes: files.reduce((x, f) => x + f.size, 0), ingestedAt: '2026-01-01T00:00:00.000Z' });
  }
  const plays: Record<string, unknown> = {};
  const served: Record<string, unknown> = {};
  for (let d = 1; d <= 7; d++) {
    const day = new Date(Date.now() - d * DAY).toISOString().slice(0, 10);
    const counts: Record<string, number> = {};
    const sums: Record<string, unknown> = {};
    for (let i = 0; i < TITLES; i += 2) {
      const n = 1 + Math.floor(2000 / (i + 1));
      counts[`big${i}`] = n;
      const files: Record<string, { requests: number; bytes: number }> = {};
      for (let r = 5; r < 10; r++) for (let s = 0; s < 6; s++) files[`r${r}/seg${s}.m4s`] = { requests: n, bytes: Math.round(n * ((r + 1) * 1_000_000) * (1 - s / 8)) };
      sums[`big${i}`] = { plays: n, files };
    }
    plays[day] = { 'isp-a': counts };
    served[day] = sums;
  }
  return { entries, plays, served };
}

describe('an origin making a large fill plan', () => {
  let origin: RunningOrigin | undefined;
  afterEach(async () => {
    await origin?.close();
    origin = undefined;
  });

  it('keepsAnsweringObjectRequestsWhileThePlanIsMade', async () => {
    const config = originTestConfig();
    await ingestTitle(config, 'real', join(FIXTURES, 'hls-bytes'));
    const dataDir = config.origin.dataDir;
    const doc = JSON.parse(readFileSync(join(dataDir, 'catalog.json'), 'utf8')) as CatalogDocument;
    const big = bigCatalog();
    doc.titles.push(...big.entries);
    writeFileSync(join(dataDir, 'catalog.json'), JSON.stringify(doc));
    writeFileSync(join(dataDir, 'plays.json'), JSON.stringify({ version: 1, days: big.plays }));
    writeFileSync(join(dataDir, 'served.json'), JSON.stringify({ version: 1, sliceBytes: 2 * 1024 * 1024, days: big.served }));

    origin = await startTestOrigin(config);
    const { adminUrl, server } = origin;
    const { registry } = server;
    const object = `${origin.publicUrl}${origin.signed('/o/real/stream_360p.mp4')}`;

    // The first manifest waits for the first plan; meanwhile a client reads objects back to back.
    const askedAt = performance.now();
    let planned: number | undefined;
    const manifest = request(`${adminUrl}/v1/manifests/edge-a1`, { headers: authHeader }).then(async (res) => {
      expect(res.statusCode).toBe(200);
      await res.body.json();
      planned = performance.now();
    });
    const answered: number[] = [];
    while (planned === undefined) {
      const res = await request(object, { method: 'HEAD' });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
      if (planned === undefined) answered.push(performance.now());
    }
    await manifest;

    const plan = (await registry.getSingleMetric('reelcdn_origin_fill_plan_seconds')!.get()).values as { metricName?: string; value: number }[];
    const planSeconds = plan.find((v) => v.metricName?.endsWith('_sum'))!.value;
    // Answers came all along: the longest wait for the next one is a fraction of the plan's time
    // (on the event loop, one answer would wait for the whole plan).
    const times = [askedAt, ...answered, planned!];
    const longestGap = Math.max(...times.slice(1).map((t, i) => t - times[i]!));
    const context = JSON.stringify({ planSeconds, answers: answered.length, longestGapMs: Math.round(longestGap) });
    expect(planSeconds, context).toBeGreaterThan(0.1);
    expect(answered.length, context).toBeGreaterThan(5);
    expect(longestGap, context).toBeLessThan((planSeconds * 1000) / 2);
  });
});
