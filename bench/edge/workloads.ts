/**
 * What the edge benchmark asks for: the content it generates for the bench origin, and the
 * request lists of each workload. Every URL carries a signed token, as steering hands them out
 * (the edge runs with `signing.required: true`); nginx and Varnish get the same URLs.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signQuery } from '../../src/common/signing.js';
import { seededRandom as rng } from '../seeded-random.js';

export const MiB = 1024 * 1024;
export const KiB = 1024;

export const MEMORY_BYTES = 192 * MiB;
export const DISK_BYTES = 4096 * MiB;
export const SLICE_BYTES = 2 * MiB;

const BIG_BYTES = 64 * MiB;
const SMALL_COUNT = 2000;
const SMALL_BYTES = 16 * KiB;
const SEGMENT_COUNT = 480; // ~0.9 GiB: ~5x memoryBytes
export const COLD_COUNT = 1000;
const COLD_BYTES = 512 * KiB;
/** Never-seen objects beyond COLD_COUNT: what connections still ask for when a bounded run stops. */
const COLD_SPARE = 128;

export const SIGNING = { keys: { bench: 'bench-secret-0123456789abcdef' }, activeKey: 'bench' } as const;

export interface Req {
  path: string;
  range?: string;
}

export type WorkloadKey = 'hot-2m' | 'hot-16k' | 'disk-tier' | 'cold' | 'tls-hot-2m' | 'tls-hot-16k';

/** The workloads that also run over HTTPS (as `tls-<key>`), each against its plain twin. */
export const TLS_TWINS = ['hot-2m', 'hot-16k'] as const;

export interface Workload {
  key: WorkloadKey;
  title: string;
  connections: number;
  /** Requests that fill the cache before measuring (each list fetched in order, `fillPasses` times). */
  fill: Req[];
  fillPasses: number;
  /** A short unmeasured run first (JIT, connection set-up). */
  warmup: boolean;
  /** Bounded count instead of a duration (cold: each request a never-seen object). */
  amount?: number;
  /** The measured run walks `requests` from index 0 by `stride` (coprime with the length). */
  requests: Req[];
  stride: number;
  /** Body size of one answer: what the bare node:http ceiling server hands out for this workload. */
  answerBytes: number;
  /** Over HTTPS (the servers' TLS listeners); `plain` is the workload it repeats. */
  tls?: { plain: WorkloadKey };
}

function pad(n: number, w = 4): string {
  return String(n).padStart(w, '0');
}

export function contentSummary(): string {
  return `64 MiB file, ${SMALL_COUNT} x 16 KiB, ${SEGMENT_COUNT} segments of 1.75-2 MiB, ${COLD_COUNT + COLD_SPARE} x 512 KiB`;
}

export function generateContent(root: string): void {
  const noise = randomBytes(8 * MiB);
  const write = (title: string, file: string, bytes: number, seed: number) => {
    const dir = join(root, title);
    mkdirSync(dir, { recursive: true });
    const buf = Buffer.allocUnsafe(bytes);
    let off = 0;
    let src = (seed * 7919) % noise.length;
    while (off < bytes) {
      const n = Math.min(bytes - off, noise.length - src);
      noise.copy(buf, off, src, src + n);
      off += n;
      src = 0;
    }
    buf.write(`${title}/${file}#${seed}`, 0); // every object distinct
    writeFileSync(join(dir, file), buf);
  };
  write('big', 'movie.ts', BIG_BYTES, 1);
  for (let i = 0; i < SMALL_COUNT; i++) write('small', `o${pad(i)}.m4s`, SMALL_BYTES, 10 + i);
  const r = rng(42);
  for (let i = 0; i < SEGMENT_COUNT; i++) {
    // "2 MiB-ish": 1.75-2 MiB, so one segment is one slice everywhere
    const bytes = SLICE_BYTES - Math.floor(r() * (SLICE_BYTES / 8));
    write('seg', `s${pad(i)}.ts`, bytes, 5000 + i);
  }
  for (let i = 0; i < COLD_COUNT + COLD_SPARE; i++) write('cold', `c${pad(i)}.m4s`, COLD_BYTES, 9000 + i);
}

/** `path?e=..&k=..&t=..`, valid until `nowSec + ttlSeconds` (steering's own signer). */
export function signed(path: string, nowSec: number, ttlSeconds: number): string {
  return `${path}?${signQuery(SIGNING.keys, SIGNING.activeKey, path, nowSec, ttlSeconds)}`;
}

export function workloads(sign: (path: string) => string): Workload[] {
  const req = (path: string, range?: string): Req => (range ? { path: sign(path), range } : { path: sign(path) });
  // hot-2m: 2 MiB ranges at random (188-byte, TS packet aligned) offsets: most span two slices.
  const r = rng(7);
  const ranges: Req[] = Array.from({ length: 512 }, () => {
    const start = Math.floor((r() * (BIG_BYTES - 2 * MiB)) / 188) * 188;
    return req('/c/big/movie.ts', `bytes=${start}-${start + 2 * MiB - 1}`);
  });
  const bigSlices: Req[] = Array.from({ length: BIG_BYTES / SLICE_BYTES }, (_, i) =>
    req('/c/big/movie.ts', `bytes=${i * SLICE_BYTES}-${(i + 1) * SLICE_BYTES - 1}`),
  );
  const small: Req[] = Array.from({ length: SMALL_COUNT }, (_, i) => req(`/c/small/o${pad(i)}.m4s`));
  const segs: Req[] = Array.from({ length: SEGMENT_COUNT }, (_, i) => req(`/c/seg/s${pad(i)}.ts`));
  const cold: Req[] = Array.from({ length: COLD_COUNT + COLD_SPARE }, (_, i) => req(`/c/cold/c${pad(i)}.m4s`));

  const plain: Workload[] = [
    {
      key: 'hot-2m',
      title: 'hot 2 MiB ranges (64 MiB file, random offsets)',
      connections: 32,
      fill: bigSlices,
      fillPasses: 2,
      warmup: true,
      requests: ranges,
      stride: 1,
      answerBytes: 2 * MiB,
    },
    {
      key: 'hot-16k',
      title: `hot 16 KiB objects (${SMALL_COUNT.toLocaleString('en-US')})`,
      connections: 64,
      fill: small,
      fillPasses: 2,
      warmup: true,
      requests: small,
      stride: 7, // coprime with 2000: every object, scattered
      answerBytes: SMALL_BYTES,
    },
    {
      key: 'disk-tier',
      title: `disk-tier hits (${SEGMENT_COUNT} ~2 MiB segments, ${((SEGMENT_COUNT * 1.94 * MiB) / MEMORY_BYTES).toFixed(1)}x memoryBytes, cyclic)`,
      connections: 32,
      fill: segs,
      fillPasses: 2,
      warmup: true,
      requests: segs,
      stride: 1,
      answerBytes: 2 * MiB,
    },
    {
      key: 'cold',
      title: `cold misses (${COLD_COUNT} never-seen 512 KiB objects)`,
      connections: 32,
      fill: [],
      fillPasses: 0,
      warmup: false,
      amount: COLD_COUNT,
      requests: cold,
      stride: 1,
      answerBytes: COLD_BYTES,
    },
  ];
  // The same requests, in the same order, over HTTPS.
  const tls = plain
    .filter((w) => (TLS_TWINS as readonly string[]).includes(w.key))
    .map((w): Workload => ({ ...w, key: `tls-${w.key}` as WorkloadKey, title: `${w.title}, over HTTPS`, tls: { plain: w.key } }));
  return [...plain, ...tls];
}

/**
 * The workload keys a `BENCH_WORKLOADS` / `--only` list names, in the bench's order. `tls` stands
 * for the HTTPS workloads and their plain twins (the TLS cost is the difference between the two);
 * `workers-2` is a phase, kept as it is. Undefined (everything) when no list is given; an unknown
 * name is an error naming it.
 */
export function selectWorkloads(list: string | undefined, known: readonly string[]): string[] | undefined {
  if (list === undefined || list.trim() === '') return undefined;
  const out = new Set<string>();
  for (const name of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (name === 'tls') {
      for (const k of TLS_TWINS) out.add(k).add(`tls-${k}`);
    } else if (known.includes(name) || name === 'workers-2') {
      out.add(name);
    } else {
      throw new Error(`unknown workload '${name}' (known: ${[...known, 'workers-2', 'tls'].join(', ')})`);
    }
  }
  return [...known, 'workers-2'].filter((k) => out.has(k));
}
