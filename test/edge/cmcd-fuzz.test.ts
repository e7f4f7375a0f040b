import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signQuery } from '../../src/common/signing.js';
import { TEST_KEYS, randomTitle, tempDir, testCluster, writeMedia } from '../helpers/cluster.js';
import { type RunningEdge, startEdge } from '../helpers/edge-harness.js';
import { parsePrometheusText } from '../helpers/prom-parse.js';
import { TestOrigin } from '../helpers/test-origin.js';

/**
 * Whatever a client puts in CMCD — random text, broken structure, huge values, a key a hundred
 * times, the parameter twice, bad percent-encoding — the edge answers the object as it would
 * without it: the normal 200/206 with the right bytes (or node's 431 for a head over its limit,
 * or 400 for a URL it cannot read), never a 500, never a crash. Seeded: a failure replays.
 */
const S = 64 * 1024;
const SIZE = 3 * S + 123;
const KEYS = ['br', 'bl', 'bs', 'cid', 'd', 'dl', 'mtp', 'nor', 'nrr', 'ot', 'pr', 'rtp', 'sf', 'sid', 'st', 'su', 'tb', 'v', 'com.example-x', 'X', '1a', '', 'e', 'k', 't'];
const CHARS = [...'abcz019=,;:"\\ ()?*/%&+#-._~!\'$<>[]{}|^`\t'];

/** mulberry32: a small seeded generator, so a failing case can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('CMCD fuzzing against a running edge', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  const title = randomTitle();
  let data: Buffer;
  let edge: RunningEdge;

  beforeAll(async () => {
    await origin.start();
    data = writeMedia(root, title, 'seg.m4s', SIZE);
    edge = await startEdge(testCluster({ sliceBytes: S }), origin.url);
  });
  afterAll(async () => {
    await edge?.close();
    await origin.close();
  });

  it('itAnswersEveryMalformedCmcdNormally: hundreds of random headers and queries, right bytes, no 500', async () => {
    const r = rng(0x5eed12);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    const int = (n: number) => Math.floor(r() * n);
    const junk = (n: number) => Array.from({ length: n }, () => pick(CHARS)).join('');
    const value = (short = false): string => {
      switch (short ? pick([0, 5, 9, 10]) : int(12)) {
        case 0:
          return String(int(1e6));
        case 1:
          return `-${int(1e18)}.${int(1e6)}`;
        case 2:
          return `"${junk(int(40)).replace(/["\\]/g, '')}"`;
        case 3:
          return `"${junk(int(40))}`; // unterminated, with escapes of anything
        case 4:
          return `(${junk(int(20))})`;
        case 5:
          return `?${pick(['0', '1', '2', ''])}`;
        case 6:
          return pick(['v', 'av', 'm', 'zz', 'x'.repeat(100)]);
        case 7:
          return `"${'n'.repeat(2000 + int(3000))}"`; // very long
        case 8:
          return `${int(9)}e${int(400)}`;
        case 9:
          return '';
        default:
          return junk(int(12));
      }
    };
    const dict = (): string => {
      const n = int(4) === 0 ? 100 + int(200) : int(8); // sometimes a key repeated a hundred times
      const members: string[] = [];
      const repeated = pick(KEYS);
      for (let i = 0; i < n; i++) {
        const key = n > 50 ? repeated : pick(KEYS);
        members.push(int(5) === 0 ? key : `${key}=${value(n > 50)}`);
      }
      const sep = pick([',', ', ', ',,', ';', ' ,', ',\t']);
      return int(10) === 0 ? junk(int(200)) : members.join(sep);
    };
    /** A query value: percent-encoded, or raw with broken escapes. */
    const queryValue = (text: string): string => {
      if (int(6) === 0) return `${text.replace(/[^A-Za-z0-9=,"]/g, '')}%${pick(['zz', 'E0%A4', '', '4', 'C3'])}`;
      try {
        return encodeURIComponent(text);
      } catch {
        return 'x';
      }
    };

    const path = `/c/${title}/seg.m4s`;
    const query = signQuery(TEST_KEYS, 'k1', path, Date.now() / 1000, 3600);
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    const oneCase = async (i: number): Promise<void> => {
      const headers: Record<string, string> = {};
      for (const name of ['cmcd-object', 'cmcd-request', 'cmcd-session', 'cmcd-status']) if (int(3) === 0) headers[name] = dict();
      let q = query;
      const where = int(4);
      const cmcd = `CMCD=${queryValue(dict())}`;
      if (where === 0) q = `${cmcd}&${q}`;
      else if (where === 1) q = `${q}&${cmcd}`;
      else if (where === 2) q = `${q}&${cmcd}&CMCD=${queryValue(dict())}`; // twice
      const kind = int(6);
      let want: Buffer | undefined = data;
      let wantStatus = 200;
      if (kind === 0) {
        const start = int(SIZE);
        const end = Math.min(SIZE - 1, start + int(2 * S));
        headers.range = `bytes=${start}-${end}`;
        want = data.subarray(start, end + 1);
        wantStatus = 206;
      } else if (kind === 1) {
        headers.range = 'bytes=0-9,100-199'; // multipart: the object routes answer it
        want = undefined;
        wantStatus = 206;
      }
      const method = kind === 2 ? 'HEAD' : 'GET';
      const head = Object.entries(headers).reduce((n, [k, v]) => n + k.length + v.length, 0) + path.length + q.length;
      try {
        const res = await request(`${edge.url}${path}?${q}`, { method, headers });
        const body = Buffer.from(await res.body.arrayBuffer());
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        // Over node's 16 KiB head limit: its 431 (or 400) is the answer, nothing of ours ran.
        if (head > 15_000 && (res.statusCode === 431 || res.statusCode === 400)) return;
        if (res.statusCode !== wantStatus) failures.push(`case ${i}: ${res.statusCode} for ${JSON.stringify({ q: q.slice(0, 300), headers }).slice(0, 600)}`);
        else if (method === 'GET' && want !== undefined && !body.equals(want)) failures.push(`case ${i}: wrong bytes`);
        else if (method === 'HEAD' && res.headers['content-length'] !== String(SIZE)) failures.push(`case ${i}: HEAD length ${res.headers['content-length']}`);
      } catch (err) {
        failures.push(`case ${i}: ${(err as Error).message}`);
      }
    };
    const CASES = 400;
    for (let i = 0; i < CASES; i += 16) await Promise.all(Array.from({ length: Math.min(16, CASES - i) }, (_, j) => oneCase(i + j)));
    expect(failures).toEqual([]);
    expect(statuses.get(500) ?? 0).toBe(0);
    expect((statuses.get(200) ?? 0) + (statuses.get(206) ?? 0), JSON.stringify([...statuses])).toBeGreaterThan(CASES * 0.8);

    // Still serving, and the series stayed within their fixed labels.
    const again = await edge.get(title, 'seg.m4s');
    expect(again.status).toBe(200);
    expect(again.body.equals(data)).toBe(true);
    const m = parsePrometheusText(await edge.server.metrics.registry.metrics());
    const ots = new Set(m.samples.filter((s) => s.name === 'reelcdn_edge_cmcd_requests_total').map((s) => s.labels.ot));
    for (const ot of ots) expect(['m', 'a', 'v', 'av', 'i', 'c', 'tt', 'k', 'o', 'other', 'none']).toContain(ot);
    expect(edge.server.health().qoe.requests).toBeGreaterThan(CASES / 2);
    expect(edge.server.qoe.tracked).toBeLessThanOrEqual(CASES);
  }, 20_000);
});
