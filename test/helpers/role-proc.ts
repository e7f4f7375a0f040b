import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';

/**
 * A `reelcdn <role>` process as reload tests drive it: spawned from dist/, its JSON log lines
 * captured (stdout and stderr), SIGHUP and the reload outcome it logs, and a kill at the end.
 */

export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'src', 'cli.js');

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** The line every reload ends with: applied, nothing to apply, refused or failed. */
export const RELOAD_LINE = /^reload (applied|refused|failed)|^reload: nothing/;

export interface RoleProc {
  child: ChildProcess;
  /** Its JSON log lines so far. */
  lines(): LogLine[];
  /** Everything it wrote, for failure messages. */
  output(): string;
  /**
   * The first line at or after index `from` that `match` accepts. Fails at once if the process
   * exits, or after `timeoutMs` (default 15 s) with the lines it logged meanwhile.
   */
  waitLine(match: (l: LogLine) => boolean, from?: number, timeoutMs?: number): Promise<LogLine>;
  /**
   * Reloads asked for so far (SIGHUP, POST /reload): the n-th reload is the n-th RELOAD_LINE,
   * counted rather than timed (log lines are written in batches). Whoever posts /reload adds one.
   */
  reloads: number;
  /** Sends SIGHUP and resolves with that reload's outcome line. */
  sighup(): Promise<LogLine>;
  /** The outcome line of reload number `n` (from 0), when it is logged. */
  reloadOutcome(n: number): Promise<LogLine>;
  /** SIGTERM (or `signal`), resolved once it exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Every process spawned here and not yet stopped: killAll() in an afterEach/afterAll. */
const running = new Set<ChildProcess>();

/**
 * Spawns `node dist/src/cli.js ...args` and resolves once it logs `readyMsg` (e.g. "edge
 * listening"), with that line; rejects with its output if it exits first or takes over 20 s.
 */
export async function spawnRole(args: string[], opts: { env?: NodeJS.ProcessEnv; readyMsg: string; timeoutMs?: number }): Promise<{ proc: RoleProc; ready: LogLine }> {
  if (!existsSync(CLI)) throw new Error('dist/src/cli.js is missing: run npm run build');
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let out = '';
  const parsed: LogLine[] = [];
  let rest = '';
  const take = (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    out += text;
    const lines = (rest + text).split('\n');
    rest = lines.pop()!;
    for (const l of lines) {
      if (!l.startsWith('{')) continue;
      try {
        parsed.push(JSON.parse(l) as LogLine);
      } catch {
        // not a log line
      }
    }
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const pick = async (find: () => LogLine | undefined, from: number, timeoutMs: number): Promise<LogLine> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = find();
      if (hit) return hit;
      if (gone()) throw new Error(`${args[0]} exited (${child.signalCode ?? child.exitCode}):\n${out}`);
      if (Date.now() > deadline) throw new Error(`no such log line within ${timeoutMs} ms; got:\n${parsed.slice(from).map((l) => JSON.stringify(l)).join('\n')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const proc: RoleProc = {
    child,
    lines: () => parsed,
    output: () => out,
    waitLine: (match, from = 0, timeoutMs = 15_000) => pick(() => parsed.slice(from).find(match), from, timeoutMs),
    reloads: 0,
    reloadOutcome: (n) => pick(() => parsed.filter((l) => RELOAD_LINE.test(l.msg))[n], 0, 15_000),
    async sighup() {
      const n = proc.reloads++;
      child.kill('SIGHUP');
      return proc.reloadOutcome(n);
    },
    async stop(signal = 'SIGTERM') {
      if (gone()) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await exited;
    },
  };
  const ready = await proc.waitLine((l) => l.msg === opts.readyMsg, 0, opts.timeoutMs ?? 20_000);
  return { proc, ready };
}

/** SIGKILLs every role process still running (tests' cleanup). */
export function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/** Polls `probe` every 50 ms until it gives a value (a throw counts as not yet). */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A new TLS connection to `url` (HTTP/1.1 in ALPN) trusting `ca`, optionally resuming `session`. */
export function tlsHandshake(url: string, ca: Buffer, session?: Buffer): Promise<TLSSocket> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.hostname, port: Number(u.port), ca, servername: 'localhost', ALPNProtocols: ['http/1.1'], ...(session ? { session } : {}) }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** The serial (uppercase hex) of the certificate a new TLS connection to `url` is shown. */
export async function serialAt(url: string, ca: Buffer): Promise<string> {
  const socket = await tlsHandshake(url, ca);
  const serial = socket.getPeerCertificate().serialNumber.toUpperCase();
  socket.destroy();
  return serial;
}

/**
 * A TLS 1.3 session ticket from `url`, and whether a second connection offering it was resumed:
 * a listener whose secure context was replaced in between (new ticket keys) makes it a full handshake.
 */
export async function sessionTicket(url: string, ca: Buffer): Promise<Buffer> {
  const socket = await tlsHandshake(url, ca);
  // TLS 1.3 sends tickets after the handshake; one comes with the first read.
  const session = await new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no session ticket from ${url}`)), 5000);
    socket.once('session', (s: Buffer) => {
      clearTimeout(timer);
      resolve(s);
    });
    socket.write('HEAD /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n');
  });
  socket.destroy();
  return session;
}

export async function resumes(url: string, ca: Buffer, session: Buffer): Promise<boolean> {
  const socket = await tlsHandshake(url, ca, session);
  const reused = socket.isSessionReused();
  socket.destroy();
  return reused;
}
