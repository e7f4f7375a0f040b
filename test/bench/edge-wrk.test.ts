import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LoadPlan, threadQuota, threadStarts } from '../../bench/edge/load.js';
import { parseWrkResult, runWrk, threadsDone, wrkScript } from '../../bench/edge/wrk.js';

const list = (n: number, range = false) =>
  Array.from({ length: n }, (_, i) => ({ path: `/c/t/o${i}.m4s?e=1&k=b&t=x"${i}`, ...(range ? { range: `bytes=${i}-${i + 9}` } : {}) }));

describe('edge bench: request plans', () => {
  it('spreads the threads of a timed run over the list', () => {
    expect(threadStarts({ requests: list(100), threads: 2, connections: 64 })).toEqual([0, 50]);
    expect(threadStarts({ requests: list(100), threads: 1, connections: 64 })).toEqual([0]);
  });

  it('gives each thread of a bounded run its own never-seen stretch, with room for its connections', () => {
    expect(threadStarts({ requests: list(1128), threads: 2, connections: 32, amount: 1000 })).toEqual([0, 516]);
    expect(threadQuota({ threads: 2, amount: 1000 })).toBe(500);
    expect(threadQuota({ threads: 2 })).toBeUndefined();
    expect(() => threadStarts({ requests: list(1000), threads: 1, connections: 32, amount: 1000 })).toThrow(/needs 1032 distinct/);
  });
});

describe('edge bench: wrk output', () => {
  it('reads the totals line done() writes', () => {
    const out = [
      'Running 10s test @ http://127.0.0.1:1234/',
      '  1 threads and 64 connections',
      'BENCH_RESULT {"requests":50000,"duration_us":10000000,"bytes":900000000,"connect":0,"read":2,"write":1,"status":7,"timeout":3,"p50_us":1500,"p99_us":12000}',
      'Requests/sec:   5000.00',
    ].join('\n');
    expect(parseWrkResult(out)).toEqual({
      requests: 50_000,
      seconds: 10,
      reqPerSec: 5_000,
      bytesPerSec: 90_000_000,
      p50Ms: 1.5,
      p99Ms: 12,
      errors: 6,
      non2xx: 7,
    });
  });

  it('has no result when wrk did not reach done()', () => {
    expect(parseWrkResult('unable to connect to 127.0.0.1:1 Connection refused\n')).toBeUndefined();
  });

  it('counts the threads that finished their share', () => {
    expect(threadsDone('x\nBENCH_THREAD_DONE\ny\nBENCH_THREAD_DONE\n')).toBe(2);
    expect(threadsDone('BENCH_THREAD_DONEx\n')).toBe(0);
  });

  it('quotes paths for Lua and sends Range only where the workload has one', () => {
    const plan: LoadPlan = { requests: [{ path: '/a"b\\c' }, { path: '/r', range: 'bytes=0-1' }], stride: 1, connections: 1, threads: 1, seconds: 1 };
    const lua = wrkScript(plan);
    expect(lua).toContain('"/a\\"b\\\\c"');
    expect(lua).toContain('"bytes=0-1"');
    expect(lua).not.toContain('function response'); // a timed run leaves wrk's fast path alone
    expect(wrkScript({ ...plan, requests: list(10), amount: 2 })).toContain('function response');
  });
});

const hasWrk = spawnSync('wrk', ['-v']).error === undefined;

describe.skipIf(!hasWrk)('edge bench: the generated script drives a real wrk', () => {
  let server: Server;
  let url: string;
  let dir: string;
  const seen: { url: string; range: string | undefined }[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edge-wrk-test-'));
    server = createServer((req, res) => {
      seen.push({ url: req.url ?? '', range: req.headers.range });
      res.end('ok');
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((ok) => server.close(() => ok()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('walks the whole URL list by its stride, each path with its own Range', async () => {
    seen.length = 0;
    const plan: LoadPlan = { requests: list(10, true), stride: 3, connections: 2, threads: 1, seconds: 1 };
    const scriptPath = join(dir, 'timed.lua');
    writeFileSync(scriptPath, wrkScript(plan));
    const res = await runWrk({ url, scriptPath, plan, pin: [] });
    expect(res.requests).toBeGreaterThan(10);
    expect(res.errors + res.non2xx).toBe(0);
    expect(new Set(seen.map((s) => s.url))).toEqual(new Set(plan.requests.map((r) => r.path)));
    for (const s of seen) expect(s.range).toBe(plan.requests.find((r) => r.path === s.url)!.range);
  });

  it('stops a bounded run at its count, every answer a different URL', async () => {
    seen.length = 0;
    const plan: LoadPlan = { requests: list(60), stride: 1, connections: 4, threads: 2, amount: 40, seconds: 1 };
    const scriptPath = join(dir, 'bounded.lua');
    writeFileSync(scriptPath, wrkScript(plan));
    const res = await runWrk({ url, scriptPath, plan, pin: [] });
    // Answers that complete in the event-loop pass that stops a thread still count: at most
    // one per connection more than asked.
    expect(res.requests).toBeGreaterThanOrEqual(40);
    expect(res.requests).toBeLessThanOrEqual(40 + plan.connections);
    const urls = seen.map((s) => s.url);
    expect(new Set(urls).size).toBe(urls.length);
    expect(res.seconds).toBeLessThan(60); // ended by its count, not by the 120 s bound
  });
});
