/**
 * Where an edge's CPU time went, from the `.cpuprofile` files `BENCH_CPU_PROF=DIR` leaves (one per
 * process): self time by function and by owner (ReelCDN's code, a package, Node's internals, the
 * garbage collector), as shares of the busy time (idle excluded).
 *
 *   node dist/bench/edge/cpuprofile-top.js DIR|FILE... [--top N]
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

export interface SelfTime {
  name: string;
  owner: string;
  micros: number;
}

/** Who a frame belongs to: ReelCDN's own code, a package, Node, or V8's pseudo-frames. */
export function ownerOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return 'node internals';
  if (/\/dist\/(src|bench)\//.test(url)) return 'reelcdn';
  return 'other';
}

/** Self time of every frame (samples × the mean sampling interval), largest first. */
export function selfTimes(profile: CpuProfile): SelfTime[] {
  const hits = new Map<number, number>();
  if (profile.samples && profile.samples.length > 0) for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  else for (const n of profile.nodes) hits.set(n.id, n.hitCount ?? 0);
  const total = [...hits.values()].reduce((a, b) => a + b, 0);
  const interval = total > 0 ? (profile.endTime - profile.startTime) / total : 0;
  const byName = new Map<string, SelfTime>();
  for (const n of profile.nodes) {
    const h = hits.get(n.id) ?? 0;
    if (h === 0) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const owner = ownerOf(url, functionName);
    const name = url ? `${functionName || '(anonymous)'} ${basename(url)}:${lineNumber + 1}` : functionName || '(anonymous)';
    const got = byName.get(name) ?? { name, owner, micros: 0 };
    got.micros += h * interval;
    byName.set(name, got);
  }
  return [...byName.values()].sort((a, b) => b.micros - a.micros);
}

/** Busy time (everything but `(idle)`) by owner, largest first. */
export function byOwner(times: SelfTime[]): { owner: string; micros: number }[] {
  const m = new Map<string, number>();
  for (const t of times) if (t.owner !== '(idle)') m.set(t.owner, (m.get(t.owner) ?? 0) + t.micros);
  return [...m.entries()].map(([owner, micros]) => ({ owner, micros })).sort((a, b) => b.micros - a.micros);
}

function merge(lists: SelfTime[][]): SelfTime[] {
  const m = new Map<string, SelfTime>();
  for (const list of lists) {
    for (const t of list) {
      const got = m.get(t.name) ?? { ...t, micros: 0 };
      got.micros += t.micros;
      m.set(t.name, got);
    }
  }
  return [...m.values()].sort((a, b) => b.micros - a.micros);
}

function profileFiles(args: string[]): string[] {
  return args.flatMap((a) =>
    statSync(a).isDirectory()
      ? readdirSync(a)
          .filter((f) => f.endsWith('.cpuprofile'))
          .map((f) => join(a, f))
      : [a],
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const args = process.argv.slice(2);
  const t = args.indexOf('--top');
  const top = t >= 0 ? Number(args.splice(t, 2)[1]) : 25;
  const files = profileFiles(args);
  if (files.length === 0) {
    process.stderr.write('usage: cpuprofile-top DIR|FILE... [--top N]\n');
    process.exit(2);
  }
  const times = merge(files.map((f) => selfTimes(JSON.parse(readFileSync(f, 'utf8')) as CpuProfile)));
  const owners = byOwner(times);
  const busy = owners.reduce((a, o) => a + o.micros, 0);
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)} %`;
  process.stdout.write(`${files.length} profile(s), busy ${(busy / 1e6).toFixed(2)} s (idle excluded)\n\nby owner:\n`);
  for (const o of owners) process.stdout.write(`  ${pct(o.micros)}  ${o.owner}\n`);
  process.stdout.write(`\ntop ${top} functions by self time:\n`);
  for (const x of times.filter((x) => x.owner !== '(idle)').slice(0, top)) process.stdout.write(`  ${pct(x.micros)}  ${x.name}  [${x.owner}]\n`);
}
