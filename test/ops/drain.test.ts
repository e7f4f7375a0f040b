import { spawn } from 'node:child_process';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, CLI, type ProcCluster, TITLES, startProcCluster } from '../helpers/cluster-procs.js';
import { operatorClusterFile, reelcdn } from '../helpers/operator.js';
import { until } from '../helpers/role-proc.js';

/**
 * `reelcdn drain` / `undrain` against a real cluster (three `reelcdn edge` processes, a real
 * origin and steering): while a client keeps asking steering where to go and fetching from
 * there, the drained edge leaves steering's answers and comes back, the process never exits,
 * and no request fails.
 */

const cli = (args: string[]) => reelcdn(args, { REELCDN_ADMIN_TOKEN: ADMIN_TOKEN }, 60_000);

const FILES: [string, string][] = [
  [TITLES.dash, 'chunk-0-00001.m4s'],
  [TITLES.dash, 'chunk-1-00002.m4s'],
  [TITLES.hlsSegments, 'seg_180p_001.m4s'],
  [TITLES.hlsBytes, 'stream_180p.mp4'],
];

interface Sample {
  /** When the locate was asked (ms, Date.now()). */
  at: number;
  /** Edges steering offered, in order. */
  offered: string[];
  /** Who answered the fetch, and how. */
  edge: string;
  status: number;
}

describe('reelcdn drain and undrain (real processes)', () => {
  let c: ProcCluster;
  let file: string;

  /** Where steering sends a client on 127.0.0.1 (isp-a) for this file: the edges, in order, and their URLs. */
  const locate = async (title: string, f: string) => {
    const res = await request(`${c.steeringUrl}/v1/locate/${title}/${f}`, { dispatcher: c.dispatcher });
    if (res.statusCode !== 200) throw new Error(`locate answered ${res.statusCode}: ${await res.body.text()}`);
    return ((await res.body.json()) as { urls: { edge: string; url: string }[] }).urls;
  };

  /** A client that keeps going: locate, then fetch from the first edge offered. */
  const clientLoop = () => {
    const samples: Sample[] = [];
    const failures: string[] = [];
    let stop = false;
    const done = (async () => {
      for (let i = 0; !stop; i++) {
        const [title, f] = FILES[i % FILES.length]!;
        const at = Date.now();
        try {
          const urls = await locate(title, f);
          const res = await request(urls[0]!.url, { dispatcher: c.dispatcher });
          await res.body.dump();
          samples.push({ at, offered: urls.map((u) => u.edge), edge: urls[0]!.edge, status: res.statusCode });
          if (res.statusCode !== 200) failures.push(`${urls[0]!.edge} ${title}/${f}: HTTP ${res.statusCode}`);
        } catch (err) {
          failures.push(`${title}/${f}: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    return {
      samples,
      failures,
      async stop() {
        stop = true;
        await done;
      },
    };
  };

  beforeAll(async () => {
    c = await startProcCluster({ healthIntervalMs: 200, downAfter: 2, upAfter: 2 });
    file = operatorClusterFile(c);
  }, 60_000);

  afterAll(async () => {
    await c?.close();
  });

  it('movesNewSessionsAwayAndBackWithoutAFailedRequest', async () => {
    // The edge steering sends this file's players to first: the one whose drain moves them.
    const [title, f] = FILES[0]!;
    const target = (await locate(title, f))[0]!.edge;
    const other = (await locate(title, f)).find((u) => u.edge !== target && c.edges.get(u.edge)!.isp === 'isp-a')!.edge;
    const loop = clientLoop();
    await until(`the client to be sent to ${target}`, async () => (loop.samples.some((s) => s.edge === target) ? true : undefined));

    const drained = await cli(['drain', '--config', file, '--id', target]);
    const drainedAt = Date.now();
    expect(drained.stderr).toBe('');
    expect(drained.code).toBe(0);
    expect(drained.stdout).toBe(`${target}: draining — /health answers 503, players on it are still served\nsteering: ${target} down (draining): new sessions go to other edges\n`);
    // The edge says so itself, and still serves; its process is running.
    const h = await request(`${c.edges.get(target)!.adminUrl}/health`, { dispatcher: c.dispatcher });
    expect(h.statusCode).toBe(503);
    expect(((await h.body.json()) as { status: string }).status).toBe('draining');
    expect(c.edges.get(target)!.child!.exitCode).toBeNull();
    expect((await locate(title, f))[0]!.edge).toBe(other);
    // Enough of the client's requests while drained to show where they went.
    await until('the client to ask while drained', async () => (loop.samples.filter((s) => s.at >= drainedAt).length > 10 ? true : undefined));
    // A second drain changes nothing and says so.
    expect((await cli(['drain', '--config', file, '--id', target, '--no-wait'])).stdout).toBe(`${target}: already draining — /health answers 503, players on it are still served\n`);

    const undrainAsked = Date.now();
    const undrained = await cli(['undrain', '--config', file, '--id', target]);
    const undrainedAt = Date.now();
    expect(undrained.stderr).toBe('');
    expect(undrained.code).toBe(0);
    expect(undrained.stdout).toBe(`${target}: undrained — /health reports it as it is\nsteering: ${target} up: takes new sessions again\n`);
    expect((await locate(title, f))[0]!.edge).toBe(target);
    await until(`the client to be sent to ${target} again`, async () => (loop.samples.some((s) => s.at >= undrainedAt && s.edge === target) ? true : undefined));
    await loop.stop();

    expect(loop.failures).toEqual([]);
    const during = loop.samples.filter((s) => s.at >= drainedAt && s.at < undrainAsked);
    const after = loop.samples.filter((s) => s.at >= undrainedAt);
    expect(during.length).toBeGreaterThan(10);
    // Asked while drained: steering never offered it, not even as a later choice.
    expect(during.filter((s) => s.offered.includes(target))).toEqual([]);
    expect(after.some((s) => s.edge === target)).toBe(true);
    expect(loop.samples.every((s) => s.status === 200)).toBe(true);
  });

  it('drainsANodeOfSeveralWorkersWhoseHealthThePrimaryAnswers', async () => {
    // edge-b1 again, as a node of two worker processes.
    await c.killEdge('edge-b1', 'SIGTERM');
    const b1 = c.edges.get('edge-b1')!;
    const child = spawn(process.execPath, [CLI, 'edge', '--config', c.clusterFile, '--id', 'edge-b1', '--workers', '2'], {
      env: { ...process.env, REELCDN_ADMIN_TOKEN: ADMIN_TOKEN },
      stdio: 'ignore',
    });
    try {
      const health = async () => {
        const res = await request(`${b1.adminUrl}/health`, { dispatcher: c.dispatcher, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        return { code: res.statusCode, body: (await res.body.json()) as { status: string; workers: { status: string }[] } };
      };
      for (let i = 0; ; i++) {
        const h = await health().catch(() => undefined);
        if (h?.code === 200 && h.body.workers.length === 2 && h.body.workers.every((w) => w.status === 'ok')) break;
        if (i > 200) throw new Error('the two-worker node did not come up');
        await new Promise((r) => setTimeout(r, 100));
      }
      const d = await cli(['drain', '--config', file, '--id', 'edge-b1']);
      expect(d.code, d.stderr).toBe(0);
      const h = await health();
      expect(h.code).toBe(503);
      expect(h.body.status).toBe('draining');
      // The workers are told (their answers say CMSD du and their prefetch stops) and say so; they keep serving.
      expect(h.body.workers.map((w) => w.status)).toEqual(['draining', 'draining']);
      expect((await c.edgeState('edge-b1')).state).toBe('down');
      // Its workers still answer players.
      const [title, f] = FILES[0]!;
      const direct = (await locate(title, f)).find((u) => u.edge === 'edge-a1') ?? (await locate(title, f))[0]!;
      const res = await request(direct.url.replace(new URL(direct.url).origin, new URL(b1.url).origin), { dispatcher: c.dispatcher });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
      // A purge by prefix reaches the primary's disk and every worker's memory.
      const onB1 = direct.url.replace(new URL(direct.url).origin, new URL(b1.url).origin);
      const cacheOf = async () => {
        // A new connection each time: any worker may answer.
        const r = await request(onB1, { dispatcher: c.dispatcher, reset: true });
        await r.body.dump();
        return String(r.headers['x-cache']);
      };
      expect(await cacheOf()).toMatch(/^HIT/);
      const purged = await request(`${b1.adminUrl}/purge`, {
        method: 'POST',
        dispatcher: c.dispatcher,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ prefix: 'bbb-' }),
      });
      expect(purged.statusCode).toBe(200);
      expect(((await purged.body.json()) as { purged: number }).purged).toBe(1);
      expect(await cacheOf()).toBe('MISS');
      const u = await cli(['undrain', '--config', file, '--id', 'edge-b1']);
      expect(u.code, u.stderr).toBe(0);
      expect((await health()).code).toBe(200);
      expect((await c.edgeState('edge-b1')).eligible).toBe(true);
      expect(child.exitCode).toBeNull();
    } finally {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
  });

  it('saysWhenTheEdgeCannotBeReachedOrIsUnknown', async () => {
    const unknown = await cli(['drain', '--config', file, '--id', 'edge-zz']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('edge-zz');
    await c.killEdge('edge-a2');
    const dead = await cli(['drain', '--config', file, '--id', 'edge-a2']);
    expect(dead.code).toBe(1);
    expect(dead.stderr).toMatch(/^reelcdn: edge-a2's admin port http:\/\/127\.0\.0\.1:\d+ cannot be reached \(ECONNREFUSED\): not drained\n$/);
  });
});
