/**
 * Edges as steering's pollers see them, for the steering benchmark: one process holding an admin
 * port per edge that answers GET /health with the whole report a real edge sends (every field
 * of src/edge/edge-health.ts, its fill's held titles, connections and bytes/s that move from poll
 * to poll) and GET /plays with an empty page of seen play ids. Nothing fetches media from them:
 * steering never does, and the benchmark measures steering's answers, not the edges'.
 *
 *   node dist/bench/steering/fake-edges.js --edge ID:ISP:PORT ... --titles t1,t2,... [--load N]
 *
 * Each edge holds a share of the titles (as a night's fill would place them); with `--load`,
 * edges report around N connections each, the first one well above the others (an edge bounded
 * loads must skip). Prints `listening` once every port is bound; exits when its stdin closes.
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { edge: { type: 'string', multiple: true }, titles: { type: 'string' }, load: { type: 'string' } } });
const edges = (values.edge ?? []).map((s) => {
  const [id, isp, port] = s.split(':');
  if (!id || !isp || !Number.isInteger(Number(port))) throw new Error(`--edge ${s}: expected ID:ISP:PORT`);
  return { id, isp, port: Number(port) };
});
const titles = (values.titles ?? '').split(',').filter((t) => t !== '');
const baseLoad = Number(values.load ?? 40);
const startedAt = Date.now();
const instance = `bench-${process.pid}`;

/** The titles edge `i` of `n` holds: about half of them, each title on at least one edge. */
function heldBy(i: number, n: number): string[] {
  return titles.filter((_, t) => t % n === i || (t + 1) % n === i);
}

function report(i: number, e: { id: string; isp: string }) {
  // A slow wander, so the smoothed loads steering keeps change between polls as real ones do.
  const phase = (Date.now() - startedAt) / 10_000 + i;
  const connections = Math.max(0, Math.round(baseLoad * (i === 0 ? 2 : 1) * (1 + 0.2 * Math.sin(phase))));
  const bytesPerSec = connections * 600_000;
  const requestsPerSec = connections * 0.5;
  const held = heldBy(i, edges.length);
  return {
    status: 'ok',
    id: e.id,
    isp: e.isp,
    version: 'bench',
    uptimeSec: Math.round((Date.now() - startedAt) / 1000),
    connections,
    requestsPerSec,
    bytesPerSec,
    errorRatio: 0,
    windowRequests: Math.round(requestsPerSec * 10),
    eventLoopDelayMs: 1.2,
    memory: { usedBytes: 48 * 2 ** 20, capacityBytes: 64 * 2 ** 20 },
    disk: { usedBytes: 300 * 2 ** 20, capacityBytes: 512 * 2 ** 20, pinnedBytes: 200 * 2 ** 20 },
    hitRatio: { requests: 0.97, bytes: 0.98 },
    byTier: {
      memory: { requests: 9000, bytes: 9000 * 600_000 },
      disk: { requests: 700, bytes: 700 * 600_000 },
      upstream: { requests: 300, bytes: 300 * 600_000 },
    },
    upstream: { url: 'http://127.0.0.1:1', inflightSlices: 0 },
    fill: {
      state: 'idle',
      windowOpen: false,
      nextWindowStart: new Date(startedAt + 3_600_000).toISOString(),
      heldTitles: held,
      manifestVersion: 1,
      filesDone: held.length * 9,
      filesTotal: held.length * 9,
      bytesDone: held.length * 136_568,
      bytesTotal: held.length * 136_568,
    },
  };
}

const servers = edges.map((e, i) =>
  createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const body = path === '/health' ? report(i, e) : path === '/plays' ? { instance, next: 0, ids: [], more: false, lost: false } : undefined;
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }),
);
await Promise.all(
  servers.map(
    (s, i) =>
      new Promise<void>((ok, fail) => {
        s.once('error', fail);
        s.listen(edges[i]!.port, '127.0.0.1', ok);
      }),
  ),
);
process.stdout.write('listening\n');
// Parent gone, however it went: do not linger.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
