/**
 * Prefix table benchmark: build time and lookups/s with 1,000,000 random prefixes
 * (900k IPv4 of /8–/32, 100k IPv6 of /16–/64). Run: node dist/bench/prefix.js
 */
import { pathToFileURL } from 'node:url';
import { buildPrefixTable, type PrefixEntry } from '../src/steering/prefix-table.js';
import { seededRandom as rng } from './seeded-random.js';


const v4 = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
const hex = (n: number) => (n & 0xffff).toString(16);

export interface PrefixBenchResult {
  prefixes: number;
  buildMs: number;
  lookupsPerSec: number;
  v4LookupsPerSec: number;
  v6LookupsPerSec: number;
  heapMiB: number;
}

export function runPrefixBench(count = 1_000_000, lookups = 2_000_000): PrefixBenchResult {
  const r = rng(7);
  const entries: PrefixEntry<string>[] = [];
  const isps = Array.from({ length: 50 }, (_, i) => `isp-${i}`);
  const seen = new Set<string>();
  while (entries.length < count) {
    const value = isps[Math.floor(r() * isps.length)]!;
    let prefix: string;
    if (entries.length % 10 !== 0) {
      const len = 8 + Math.floor(r() * 25);
      const mask = len === 32 ? 0xffffffff : (0xffffffff << (32 - len)) >>> 0;
      prefix = `${v4((Math.floor(r() * 2 ** 32) & mask) >>> 0)}/${len}`;
    } else {
      const len = 16 + Math.floor(r() * 49);
      const w = [0x2000 | Math.floor(r() * 0x1000), r() * 65536, r() * 65536, r() * 65536].map((x) => Math.floor(x));
      // zero the bits past len (groups of 16)
      const groups = w.map((g, i) => {
        const bits = Math.max(0, Math.min(16, len - 16 * i));
        return bits === 0 ? 0 : g & ((0xffff << (16 - bits)) & 0xffff);
      });
      prefix = `${groups.map(hex).join(':')}::/${len}`;
    }
    if (seen.has(prefix)) continue;
    seen.add(prefix);
    entries.push({ prefix, value });
  }
  seen.clear();
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  const table = buildPrefixTable(entries);
  const buildMs = performance.now() - t0;
  const heapMiB = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;

  const addrs4 = Array.from({ length: 100_000 }, () => v4(Math.floor(r() * 2 ** 32)));
  const addrs6 = Array.from({ length: 100_000 }, () => `2${hex(Math.floor(r() * 0x1000)).padStart(3, '0')}:${hex(r() * 65536)}:${hex(r() * 65536)}::${hex(r() * 65536)}`);
  const timeIt = (addrs: string[], n: number) => {
    let hits = 0;
    const s = performance.now();
    for (let i = 0; i < n; i++) if (table.lookup(addrs[i % addrs.length]!) !== undefined) hits++;
    const ms = performance.now() - s;
    return { perSec: (n / ms) * 1000, hits };
  };
  timeIt(addrs4, 200_000); // warm-up
  const a = timeIt(addrs4, lookups);
  const b = timeIt(addrs6, lookups / 4);
  const mixed = timeIt([...addrs4.slice(0, 90_000), ...addrs6.slice(0, 10_000)], lookups);
  return {
    prefixes: table.size,
    buildMs: Math.round(buildMs),
    lookupsPerSec: Math.round(mixed.perSec),
    v4LookupsPerSec: Math.round(a.perSec),
    v6LookupsPerSec: Math.round(b.perSec),
    heapMiB: Math.round(heapMiB),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const res = runPrefixBench();
  process.stdout.write(
    `prefix table: ${res.prefixes} prefixes built in ${res.buildMs} ms (~${res.heapMiB} MiB heap)\n` +
      `  lookups/s: mixed ${res.lookupsPerSec.toLocaleString('en')}, IPv4 ${res.v4LookupsPerSec.toLocaleString('en')}, IPv6 ${res.v6LookupsPerSec.toLocaleString('en')}\n`,
  );
}
