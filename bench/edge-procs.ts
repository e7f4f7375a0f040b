/**
 * Child processes of the edge benchmark: spawn, wait until ready, measure resident memory of a
 * process tree from /proc, and tear everything down (children and the temp dir) on any exit.
 */
import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { Agent, request } from 'undici';

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
const cleanups: (() => void)[] = [];
let cleaned = false;

/** Spawns a child that is killed when the benchmark ends, however it ends. */
export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions & { name: string }): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const tail: string[] = [];
  const keep = (d: Buffer) => {
    tail.push(d.toString());
    if (tail.length > 40) tail.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  (child as ChildProcess & { logTail?: () => string }).logTail = () => tail.join('');
  return child;
}

export function logTail(child: ChildProcess): string {
  return (child as ChildProcess & { logTail?: () => string }).logTail?.() ?? '';
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child is gone. */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((ok) => child.once('exit', () => ok()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}

export function trackTempDir(dir: string): void {
  tempDirs.add(dir);
}

export function onCleanup(fn: () => void): void {
  cleanups.push(fn);
}

/** Synchronous last-resort cleanup: kill every child still running, remove temp dirs. */
export function cleanupNow(): void {
  if (cleaned) return;
  cleaned = true;
  for (const fn of cleanups) {
    try {
      fn();
    } catch {
      /* best effort */
    }
  }
  for (const c of children) {
    try {
      if (c.pid) process.kill(c.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
}

/** Installs handlers so that Ctrl-C, a kill or a crash still cleans up. */
export function installCleanupHandlers(): void {
  process.on('exit', cleanupNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, cleaning up\n`);
      cleanupNow();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (err) => {
    process.stderr.write(`bench: ${err.stack ?? String(err)}\n`);
    cleanupNow();
    process.exit(1);
  });
}

/** A TCP port free on 127.0.0.1 right now (bind to 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
}

/**
 * Polls `url` until it answers (any status below 500), or fails after `timeoutMs`. An https://
 * URL needs `ca`, the CA its certificate is checked against.
 */
export async function waitForHttp(url: string, child: ChildProcess, timeoutMs = 20_000, ca?: Buffer): Promise<void> {
  const until = Date.now() + timeoutMs;
  const dispatcher = ca ? new Agent({ connect: { ca } }) : undefined;
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`process exited (${child.exitCode ?? child.signalCode}) before ${url} answered:\n${logTail(child)}`);
      }
      try {
        const res = await request(url, { signal: AbortSignal.timeout(1000), ...(dispatcher ? { dispatcher } : {}) });
        await res.body.arrayBuffer();
        if (res.statusCode < 500) return;
      } catch {
        /* not yet */
      }
      if (Date.now() > until) throw new Error(`${url} did not answer within ${timeoutMs} ms:\n${logTail(child)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await dispatcher?.close();
  }
}

function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** `pid` and all its descendants (from /proc/<pid>/task/<tid>/children). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i]!;
    try {
      const kids = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      if (kids) for (const k of kids.split(/\s+/)) out.push(Number(k));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** CPU seconds (user + system, all threads) a process and its descendants have used so far. */
export function treeCpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    } catch {
      /* gone */
    }
  }
  return ticks / 100; // USER_HZ
}

/** Resident bytes of a process and its descendants now. */
export function treeRss(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) total += statusField(p, 'VmRSS');
  return total;
}

/** The kernel's own high-water mark of one process's resident set. */
export function peakRss(pid: number): number {
  return statusField(pid, 'VmHWM');
}

/**
 * Samples a process tree's RSS every `everyMs`; `peak()` is the highest sum seen since `reset()`,
 * `lifetimePeak()` the highest since the sampler started.
 */
export class RssSampler {
  private max = 0;
  private lifetimeMax = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    everyMs = 100,
  ) {
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  sample(): number {
    const now = treeRss(this.pid);
    if (now > this.max) this.max = now;
    if (now > this.lifetimeMax) this.lifetimeMax = now;
    return now;
  }

  reset(): void {
    this.max = 0;
    this.sample();
  }

  peak(): number {
    this.sample();
    return this.max;
  }

  lifetimePeak(): number {
    this.sample();
    return this.lifetimeMax;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
