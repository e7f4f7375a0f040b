import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { seededRandom } from '../../bench/seeded-random.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { type RunningOrigin, copyFixture, originTestConfig, startTestOrigin } from '../helpers/origin-harness.js';
import { STORAGE_KINDS, useStorage } from '../helpers/origin-storages.js';

const MEDIA = ['stream_180p.mp4', 'stream_360p.mp4'];
const etagOf = (b: Buffer) => `"${createHash('sha256').update(b).digest('hex').slice(0, 32)}"`;

/** A copy of the hls-bytes fixture whose media files keep their sizes but not their bytes. */
function sameSizeOtherBytes(): string {
  const dir = copyFixture('hls-bytes');
  for (const f of MEDIA) {
    const p = join(dir, f);
    const data = readFileSync(p);
    for (let i = 0; i < data.length; i++) data[i] = data[i]! ^ 0x5a;
    writeFileSync(p, data);
  }
  return dir;
}

let origin: RunningOrigin | undefined;
afterEach(async () => {
  await origin?.close();
  origin = undefined;
});

describe.each(STORAGE_KINDS)('origin /o/ on %s storage while a title is re-ingested', (kind) => {
  const st = useStorage(kind);
  it.each([
    // The default grace: every version an origin may still hold stays on disk, so every answer is served.
    ['kept for the grace period', undefined, [206]],
    // Replaced versions deleted at once: an origin whose catalog is behind finds its version gone
    // and may have to say 503, but never sends another version's bytes.
    ['deleted at once', 0, [206, 503]],
  ])('itSendsOnlyBytesThatMatchTheETagOfTheirAnswerDuringSameSizeReingests (replaced versions %s)', async (_name, versionGraceMs, allowed) => {
    const config = st.on(originTestConfig());
    const a = copyFixture('hls-bytes');
    const b = sameSizeOtherBytes();
    // Every body the origin may legitimately send, by the ETag it must be sent with.
    const bodies = new Map<string, Buffer>();
    for (const dir of [a, b]) for (const f of MEDIA) bodies.set(etagOf(readFileSync(join(dir, f))), readFileSync(join(dir, f)));
    expect(bodies.size).toBe(4);

    await ingestTitle(config, 'movie', a);
    // A short poll, like the real 2 s one but many times per re-ingest: the old layout served the
    // new bytes under the old catalog entry until the poll caught up.
    origin = await startTestOrigin(config, { catalogPollMs: 5 });
    const pool = new Pool(origin.publicUrl, { connections: 8 });

    let ingesting = true;
    const ingests = (async () => {
      try {
        for (let i = 0; i < 12; i++) await ingestTitle(config, 'movie', i % 2 === 0 ? b : a, { versionGraceMs });
      } finally {
        ingesting = false;
      }
    })();

    const wrong: string[] = [];
    const statuses = new Map<number, number>();
    const seen = new Set<string>();
    let answers = 0;
    const client = async (seed: number) => {
      const rnd = seededRandom(seed);
      while (ingesting) {
        const file = MEDIA[Math.floor(rnd() * MEDIA.length)]!;
        const size = readFileSync(join(a, file)).length;
        const start = Math.floor(rnd() * size);
        const end = Math.min(size, start + 1 + Math.floor(rnd() * 65536));
        const res = await pool.request({ method: 'GET', path: origin!.signed(`/o/movie/${file}`), headers: { range: `bytes=${start}-${end - 1}` } });
        const body = Buffer.from(await res.body.arrayBuffer());
        answers++;
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        if (res.statusCode === 503) expect(res.headers['retry-after']).toBe('1');
        if (res.statusCode !== 206) continue;
        const etag = String(res.headers.etag);
        seen.add(etag);
        const full = bodies.get(etag);
        const expected = full?.subarray(start, end);
        if (!expected || !expected.equals(body)) wrong.push(`${file} bytes=${start}-${end - 1} etag ${etag}`);
      }
    };
    await Promise.all([ingests, ...Array.from({ length: 8 }, (_, i) => client(i + 1))]);
    await pool.close();

    expect(answers).toBeGreaterThan(100);
    // Both versions were served, so the swap happened under the clients' feet.
    expect(seen.size).toBeGreaterThanOrEqual(3);
    expect(wrong, `${wrong.length} of ${answers} answers had bytes of another version: ${wrong.slice(0, 3).join('; ')}`).toEqual([]);
    for (const status of statuses.keys()) expect(allowed).toContain(status);
    expect(statuses.get(206)).toBeGreaterThan(answers / 2);
  });
});
