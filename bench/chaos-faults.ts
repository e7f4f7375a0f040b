/**
 * The faults of the chaos run: when (a pure schedule, repeated every 40 s) and how (kill -9 an
 * edge and restart it, SIGSTOP/SIGCONT the origin, fill a tmpfs to ENOSPC, flip bytes in a
 * slice file, purge a title on every edge).
 */
import { openSync, closeSync, readdirSync, readFileSync, rmSync, statSync, writeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { CHAOS_ADMIN_TOKEN, CHAOS_REINGESTED, type ChaosCluster } from './chaos-cluster.js';
import type { CacheView } from './chaos-ledger.js';

export type Fault =
  | { kind: 'kill-edge'; edge: number; corruptWhileDead: boolean }
  | { kind: 'stop-origin' }
  | { kind: 'cont-origin' }
  | { kind: 'fill-disk' }
  | { kind: 'free-disk' }
  | { kind: 'corrupt-slice'; edge: number }
  | { kind: 'purge'; title: number | 'reingested' }
  | { kind: 'reingest'; version: 'a' | 'b' };

export interface ScheduledFault {
  atMs: number;
  fault: Fault;
}

/** One cycle of the schedule; a longer run repeats it. */
export const CYCLE_MS = 40_000;

/**
 * Every fault of a run of `durationMs`, in order. Per 40 s cycle: the tmpfs edge's disk fills at
 * 2 s and is freed at 35 s; an edge is killed every 10 s from 4 s (the first of each cycle has a
 * slice file corrupted while it is down, so it must find the damage when it reads its disk); the
 * origin is stopped from 6 s to 26 s; a live edge's slice file is corrupted at 29 s; a title is
 * purged at 31 s; one title is re-ingested with other bytes of the same size at 28 s (and back the
 * next cycle) and purged every 250 ms from 27.75 s to 30.75 s. Edges and titles rotate from cycle to cycle.
 */
export function chaosSchedule(durationMs: number, edges: number, titles: number): ScheduledFault[] {
  const out: ScheduledFault[] = [];
  let kills = 0;
  for (let c = 0; c * CYCLE_MS < durationMs; c++) {
    const t0 = c * CYCLE_MS;
    const at = (s: number, fault: Fault) => {
      if (t0 + s * 1000 < durationMs) out.push({ atMs: t0 + s * 1000, fault });
    };
    at(2, { kind: 'fill-disk' });
    for (const s of [4, 14, 24, 34]) at(s, { kind: 'kill-edge', edge: kills++ % edges, corruptWhileDead: s === 4 });
    at(6, { kind: 'stop-origin' });
    // The origin always comes back, even when the run ends inside the stop.
    if (t0 + 6000 < durationMs) out.push({ atMs: Math.min(t0 + 26_000, durationMs), fault: { kind: 'cont-origin' } });
    at(29, { kind: 'corrupt-slice', edge: (c + 1) % edges });
    // A new version of one title (same size, other bytes) while the edges hold the old one. The
    // origin switches within its 2 s catalog poll; purges of that title every 250 ms across the
    // switch make the edges refetch it then, where mixed versions would come from.
    at(28, { kind: 'reingest', version: c % 2 === 0 ? 'b' : 'a' });
    for (let s = 27.75; s < 31; s += 0.25) at(s, { kind: 'purge', title: 'reingested' });
    at(31, { kind: 'purge', title: c % titles });
    at(35, { kind: 'free-disk' });
  }
  return out.sort((a, b) => a.atMs - b.atMs);
}

/** A slice file's key and index, read from its JSON header (undefined if it cannot be read). */
function sliceOf(buf: Buffer): { title: string; file: string; index: number; length: number } | undefined {
  const head = buf.subarray(0, 64 * 1024).toString('latin1');
  const key = /"key":("(?:[^"\\]|\\.)*")/.exec(head);
  const index = /"index":(\d+)/.exec(head);
  const length = /"length":(\d+)/.exec(head);
  if (!key || !index || !length) return undefined;
  try {
    const [title, file] = JSON.parse(JSON.parse(key[1]!) as string) as [string, string];
    return { title, file, index: Number(index[1]), length: Number(length[1]) };
  } catch {
    return undefined;
  }
}

function sliceFiles(dir: string): string[] {
  const root = join(dir, 'cache');
  if (!existsSync(root)) return [];
  const out = [] as string[];
  for (const sub of readdirSync(root)) {
    const p = join(root, sub);
    try {
      if (statSync(p).isDirectory()) for (const n of readdirSync(p)) if (!n.startsWith('.')) out.push(join(p, n));
    } catch {
      // removed under us by the edge: skip
    }
  }
  return out;
}

export interface FaultContext {
  cluster: ChaosCluster;
  view: CacheView;
  titles: string[];
  rng: () => number;
  log: (line: string) => void;
  /** Labels of faults in force (shown with every failure). */
  active: Set<string>;
}

/** Flips the last bytes of up to `count` slice files of an edge; the ledger forgets those slices. */
export function corruptSlices(ctx: FaultContext, edge: string, count: number): number {
  const files = sliceFiles(ctx.cluster.dataDirOf(edge));
  let done = 0;
  while (done < count && files.length > 0) {
    const path = files.splice(Math.floor(ctx.rng() * files.length), 1)[0]!;
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch {
      continue;
    }
    const s = sliceOf(buf);
    if (!s || s.length < 8) continue;
    // The slice bytes end the file: the last 4 are data, whatever the header's size.
    const fd = openSync(path, 'r+');
    try {
      const tailBytes = buf.subarray(buf.length - 4).map((b) => b ^ 0xff);
      writeSync(fd, tailBytes, 0, 4, buf.length - 4);
    } finally {
      closeSync(fd);
    }
    ctx.view.forgetSlice(edge, s.title, s.file, s.index);
    ctx.log(`   corrupted ${edge} ${s.title}/${s.file} slice ${s.index}`);
    done++;
  }
  return done;
}

/** Writes a file into the tmpfs until the filesystem says ENOSPC. */
function fillToEnospc(path: string): number {
  const fd = openSync(path, 'a');
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  let bytes = 0;
  try {
    for (;;) {
      try {
        bytes += writeSync(fd, chunk);
      } catch (err) {
        if ((err as { code?: string }).code === 'ENOSPC') break;
        throw err;
      }
    }
    // The last partial chunk: fill the remainder byte-exact so nothing at all is left.
    for (const size of [4096, 1]) {
      for (;;) {
        try {
          bytes += writeSync(fd, chunk, 0, size);
        } catch {
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return bytes;
}

/** Carries out one fault. Resolves when it is done (a kill: when the edge is up again). */
export async function applyFault(ctx: FaultContext, fault: Fault): Promise<void> {
  const { cluster, view } = ctx;
  switch (fault.kind) {
    case 'kill-edge': {
      const node = cluster.edges[fault.edge]!;
      const label = `${node.name} killed`;
      ctx.active.add(label);
      view.markDead(node.name);
      await cluster.kill(node);
      let corrupted = 0;
      if (fault.corruptWhileDead) corrupted = corruptSlices(ctx, node.name, 3);
      ctx.log(`kill -9 ${node.name}${fault.corruptWhileDead ? ` (${corrupted} slice files corrupted while down)` : ''}`);
      try {
        await cluster.start(node);
      } finally {
        ctx.active.delete(label);
      }
      view.markAlive(node.name);
      ctx.log(`${node.name} restarted`);
      return;
    }
    case 'stop-origin':
      ctx.active.add('origin stopped');
      cluster.origin.child?.kill('SIGSTOP');
      ctx.log('SIGSTOP origin');
      return;
    case 'cont-origin':
      cluster.origin.child?.kill('SIGCONT');
      ctx.active.delete('origin stopped');
      ctx.log('SIGCONT origin');
      return;
    case 'fill-disk': {
      if (!cluster.tmpfsEdge) return;
      const bytes = fillToEnospc(join(cluster.dataDirOf(cluster.tmpfsEdge), 'chaos-filler'));
      ctx.active.add(`${cluster.tmpfsEdge} disk full`);
      ctx.log(`${cluster.tmpfsEdge}: disk filled to ENOSPC (+${bytes} bytes)`);
      return;
    }
    case 'free-disk':
      if (!cluster.tmpfsEdge) return;
      rmSync(join(cluster.dataDirOf(cluster.tmpfsEdge), 'chaos-filler'), { force: true });
      ctx.active.delete(`${cluster.tmpfsEdge} disk full`);
      ctx.log(`${cluster.tmpfsEdge}: disk freed`);
      return;
    case 'corrupt-slice': {
      const node = cluster.edges[fault.edge]!;
      const n = corruptSlices(ctx, node.name, 3);
      ctx.log(`${node.name}: ${n} live slice files corrupted`);
      return;
    }
    case 'reingest': {
      const label = `re-ingest ${CHAOS_REINGESTED.title} (${fault.version === 'a' ? 'fixture' : 'variant'} bytes)`;
      ctx.active.add(label);
      try {
        await cluster.reingest(fault.version);
      } finally {
        ctx.active.delete(label);
      }
      ctx.log(`${label} done`);
      return;
    }
    case 'purge': {
      const title = fault.title === 'reingested' ? CHAOS_REINGESTED.title : ctx.titles[fault.title % ctx.titles.length]!;
      const label = `purge ${title}`;
      ctx.active.add(label);
      for (const e of cluster.edges) view.forgetTitle(e.name, title);
      const results = await Promise.all(
        cluster.edges.map(async (e) => {
          try {
            const res = await request(`${e.adminUrl}/purge`, {
              method: 'POST',
              headers: { authorization: `Bearer ${CHAOS_ADMIN_TOKEN}`, 'content-type': 'application/json' },
              body: JSON.stringify({ title }),
              headersTimeout: 5000,
              bodyTimeout: 5000,
            });
            const text = await res.body.text();
            return `${e.name} ${res.statusCode} ${text.trim()}`;
          } catch (err) {
            return `${e.name} ${(err as { code?: string }).code ?? (err as Error).message}`;
          }
        }),
      );
      // Answers that began while the purge ran may have taught the ledger what it just removed.
      for (const e of cluster.edges) view.forgetTitle(e.name, title);
      ctx.active.delete(label);
      // The purges around a re-ingest come every 250 ms: logged only when an edge did not answer 200.
      if (fault.title !== 'reingested' || results.some((r) => !/ 200 /.test(r))) ctx.log(`purge ${title}: ${results.join('; ')}`);
      return;
    }
  }
}
