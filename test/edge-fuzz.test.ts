import fc from 'fast-check';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_KEYS, randomTitle, tempDir, testCluster, writeMedia } from './helpers/cluster.js';
import { startEdge, type RunningEdge } from './helpers/edge-harness.js';
import { parseMultipartByteranges, rawRequest } from './helpers/http-tools.js';
import { TestOrigin } from './helpers/test-origin.js';

const SLICE = 65536;
const SIZE = 3 * SLICE + 321;

describe('edge under fuzzing', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  let edge: RunningEdge;
  const title = randomTitle();
  let data: Buffer;

  beforeAll(async () => {
    data = writeMedia(root, title, 'f.mp4', SIZE);
    await origin.start();
    edge = await startEdge(testCluster({ sliceBytes: SLICE }, { signing: { keys: TEST_KEYS, activeKey: 'k1', required: false } }), origin.url);
    await edge.get(title, 'f.mp4');
    await edge.idle();
  });
  afterAll(async () => {
    await edge.close();
    await origin.close();
  });

  async function checkRange(range: string): Promise<void> {
    const res = await request(`${edge.url}/c/${title}/f.mp4`, { headers: { range } });
    const body = Buffer.from(await res.body.arrayBuffer());
    const status = res.statusCode;
    expect([200, 206, 416], `status for ${JSON.stringify(range)}`).toContain(status);
    if (status === 200) expect(body.equals(data)).toBe(true);
    if (status === 416) expect(res.headers['content-range']).toBe(`bytes */${SIZE}`);
    if (status !== 206) return;
    expect(Number(res.headers['content-length'])).toBe(body.length);
    const type = String(res.headers['content-type']);
    if (type.startsWith('multipart/')) {
      const parts = parseMultipartByteranges(type, body);
      expect(parts.length).toBeGreaterThan(1);
      let prevEnd = -2;
      for (const p of parts) {
        expect(p.start).toBeGreaterThan(prevEnd + 1); // sorted, merged: never adjacent or overlapping
        prevEnd = p.end;
        expect(p.end).toBeLessThan(SIZE);
        expect(p.body.equals(data.subarray(p.start, p.end + 1))).toBe(true);
      }
    } else {
      const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(res.headers['content-range']));
      expect(m, `content-range for ${JSON.stringify(range)}`).not.toBeNull();
      expect(Number(m![3])).toBe(SIZE);
      expect(body.equals(data.subarray(Number(m![1]), Number(m![2]) + 1))).toBe(true);
    }
  }

  const headerChars = fc.constantFrom(...'bytes=0123456789-,  \tBYTESxz;*/+.e'.split(''));
  const anyHeader = fc.string({ unit: headerChars, maxLength: 40 }).map((s) => s.trim());
  const num = fc.oneof(fc.integer({ min: 0, max: SIZE + 10 }), fc.constantFrom(0, SLICE - 1, SLICE, SIZE - 1, SIZE, 2 ** 40, 999999999999999));
  const spec = fc.oneof(
    fc.tuple(num, num).map(([a, b]) => `${a}-${b}`),
    num.map((a) => `${a}-`),
    num.map((n) => `-${n}`),
  );
  const nearValid = fc
    .tuple(fc.constantFrom('bytes=', 'bytes =', 'Bytes=', 'bytes= '), fc.array(spec, { minLength: 1, maxLength: 6 }), fc.constantFrom(',', ', ', ' ,'))
    .map(([unit, specs, sep]) => unit + specs.join(sep));

  it('answers arbitrary Range headers with 200, 206 or 416 and correct bytes', async () => {
    await fc.assert(fc.asyncProperty(anyHeader, checkRange), { numRuns: 300 });
  }, 30_000);

  it('answers near-valid Range headers with 200, 206 or 416 and correct bytes', async () => {
    await fc.assert(fc.asyncProperty(nearValid, checkRange), { numRuns: 300 });
  }, 30_000);

  it('answers arbitrary paths without a 5xx and keeps serving', async () => {
    const segment = fc.oneof(
      fc.constantFrom('..', '.', '', '%2e%2e', '%2F', '%00', '%5c', '%', '%zz', '%252e', 'f.mp4', title, '~', 'a b', '?x=1', '#h', '\\'),
      fc.string({ unit: fc.constantFrom(...'abc.-_%2fF0e/~'.split('')), maxLength: 12 }),
    );
    const path = fc.array(segment, { maxLength: 6 }).map((segs) => `/c/${segs.join('/')}`.replace(/[ #\\]/g, (c) => encodeURIComponent(c)));
    const before = origin.requests.length;
    await fc.assert(
      fc.asyncProperty(path, async (p) => {
        const a = await rawRequest(edge.url, p);
        expect(a.status, p).toBeGreaterThanOrEqual(200);
        expect(a.status, p).toBeLessThan(500);
      }),
      { numRuns: 300 },
    );
    // nothing it asked upstream escaped the /o/ namespace with a dot segment
    for (const r of origin.requests.slice(before)) expect(r.path.split('/')).not.toContain('..');
    const ok = await edge.get(title, 'f.mp4', { range: 'bytes=0-9' });
    expect(ok.body.equals(data.subarray(0, 10))).toBe(true);
  }, 30_000);
});
