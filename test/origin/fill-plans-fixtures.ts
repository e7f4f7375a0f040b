import type { TitleEntry } from '../../src/origin/catalog.js';

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
