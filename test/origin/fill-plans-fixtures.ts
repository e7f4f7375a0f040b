import { Catalog, type TitleEntry } from '../../src/origin/catalog.js';
import type { Plan } from '../../src/origin/fill-planner.js';

/** A one-file title of 1,000 bytes: enough for a plan to place or leave out. */
export const tinyTitle = (title: string): TitleEntry => ({
  title,
  kind: 'hls',
  manifests: ['index.m3u8'],
  files: [{ path: 'index.m3u8', size: 1_000, sha256: `${title}-i`.padEnd(64, '0'), contentType: 'application/vnd.apple.mpegurl' }],
  bytes: 1_000,
  ingestedAt: '2024-05-01T00:00:00.000Z',
});

/** `n` plays at `at`, spread over t0, t1, t2 on isp-a. */
export const playsOfThree = (n: number, at: number) => Array.from({ length: n }, (_, i) => ({ title: `t${i % 3}`, isp: 'isp-a', at }));

const MB = 1e6;

/** A title of two files, 5 MB in all. */
function fiveMbTitle(title: string): TitleEntry {
  const files = [
    { path: 'index.m3u8', size: 1_000, sha256: `${title}-i`.padEnd(64, '0'), contentType: 'application/vnd.apple.mpegurl' },
    { path: 'seg0.m4s', size: 5 * MB - 1_000, sha256: `${title}-s`.padEnd(64, '0'), contentType: 'video/mp4' },
  ];
  return { title, kind: 'hls', manifests: ['index.m3u8'], files, bytes: 5 * MB, ingestedAt: '2024-05-01T00:00:00.000Z' };
}

/** Sixty 5 MB titles, t0 … t59. */
export const titles = Array.from({ length: 60 }, (_, i) => `t${i}`);
export const catalog = new Catalog(titles.map(fiveMbTitle));
/** Plays of a day: title i played 100 − i times, with changes. */
export const playsOf = (at: number, change: Record<string, number> = {}) =>
  titles.flatMap((t, i) => Array.from({ length: change[t] ?? 100 - i }, () => ({ title: t, isp: 'isp-a', at })));
export const held = (p: Plan) => new Set(p.manifests.get('edge-a1')!.titles);
