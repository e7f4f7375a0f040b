import { createLogger, type Logger } from '../../common/logger.js';
import type { ReloadOutcome } from '../../common/reload.js';
import { DiskTier, type DiskEvent, type WriteOutcome } from '../disk-tier.js';
import type { SliceClaims } from '../edge-cache.js';
import { SeenPlays } from '../play-seen.js';
import { createEdgeServer, type EdgeServer } from '../server.js';
import type { ClaimVerdict } from './claim-table.js';
import * as M from './messages.js';
import type { WorkerStats } from './node.js';
import { SessionForwarder } from './node-sessions.js';
import { type Channel, Rpc } from './rpc.js';
import type { EdgeStatus } from '../edge-health.js';

/** Play ids this worker served, each new one also sent to the primary, which answers GET /plays. */
class ForwardedSeenPlays extends SeenPlays {
  constructor(private readonly forward: (id: string) => void) {
    super(4096, 'worker');
  }

  override record(id: string): void {
    if (this.has(id)) return;
    super.record(id);
    this.forward(id);
  }
}

/** Play ids are sent to the primary at most this often (a play's segments repeat its id). */
const PLAYS_FLUSH_MS = 250;

/**
 * Longest wait on another worker's fetch of a slice: past it, fetch it ourselves (a stuck
 * claimant must not hold every worker's clients). Upstream's own timeouts end a fetch sooner.
 */
const CLAIM_WAIT_MS = 60_000;

/**
 * One worker process of a multi-worker edge node: the public port, a memory tier of its own
 * (its share of memoryBytes), a replica of the node's disk index, and every upstream fetch
 * claimed from the primary first. Exits when told to drain, on SIGTERM/SIGINT, or when the
 * primary is gone (its channel closes).
 */
export async function runWorker(): Promise<void> {
  const rpc = new Rpc(process as unknown as Channel);
  // A send on a channel that just closed must not end this process: the 'disconnect' does.
  process.on('error', () => {});

  // Disk events may arrive before the snapshot they follow is applied: held until then.
  let disk: DiskTier | undefined;
  const early: DiskEvent[] = [];
  let server: EdgeServer | undefined;
  let logger: Logger | undefined;
  let plays: string[] = [];
  let playsFlush: NodeJS.Timeout | undefined;
  rpc.on(M.DISK_EVENT, (e: DiskEvent) => (disk ? disk.apply(e) : early.push(e)));
  // An operator's drain of the node (kept until the server exists).
  let drained = false;
  rpc.on(M.DRAINED, (on: boolean) => {
    drained = on;
    server?.setDrained(on);
  });
  // The node's status as its primary merges it (kept until the server exists): du and prefetch follow it.
  let nodeStatus: EdgeStatus = 'ok';
  rpc.on(M.NODE_STATUS, (s: EdgeStatus) => {
    nodeStatus = s;
    server?.setNodeStatus(s);
  });
  // CMCD session sightings go to the primary, which keeps the node's one session table.
  const sessions = new SessionForwarder((b) => rpc.notify(M.SESSIONS, b));

  // Asked to go (by the primary, a signal, or the primary's end) at any moment, even while
  // starting: answers in flight finish, then the process exits.
  let draining: Promise<void> | undefined;
  const drain = (why: string) => {
    draining ??= (async () => {
      logger?.info({ why }, 'worker draining');
      if (playsFlush) clearInterval(playsFlush);
      if (plays.length > 0) rpc.notify(M.PLAYS_SEEN, plays);
      await server?.close();
      sessions.flush();
      await disk?.close();
    })()
      .catch((err) => logger?.error({ err: (err as Error).message }, 'worker drain failed'))
      .finally(() => setImmediate(() => process.exit(0)));
    return draining;
  };
  rpc.handle(M.DRAIN, () => drain('primary asked'));
  process.on('SIGTERM', () => void drain('SIGTERM'));
  process.on('SIGINT', () => void drain('SIGINT'));
  // Reloads come from the primary (RELOAD), which validates the file once for the node. A
  // SIGHUP to the whole process group must not end a worker (Node's default for it).
  process.on('SIGHUP', () => {});
  // A reload that arrives before this worker's server exists is applied as soon as it does.
  let pendingReload: M.ReloadBody | undefined;
  rpc.handle(M.RELOAD, (p: M.ReloadBody): ReloadOutcome => {
    if (server) return server.applyReload(p);
    pendingReload = p;
    return { applied: p.applied, needsRestart: p.needsRestart };
  });
  process.on('disconnect', () => {
    rpc.close();
    void drain('primary gone');
  });

  const init = await rpc.call<M.InitReply>(M.INIT);
  const { config, edge, worker, workers } = init;
  drained = init.drained; // DRAINED notices come after this reply (the primary sends them to workers it has answered)
  nodeStatus = init.nodeStatus;
  logger = createLogger('edge', config.log.level, edge.id).child({ worker });
  disk = new DiskTier({
    dir: edge.dataDir,
    capacityBytes: edge.diskBytes,
    sliceBytes: edge.sliceBytes,
    logger,
    role: 'replica',
    remote: {
      commit: (p) => rpc.call<WriteOutcome>(M.DISK_COMMIT, p),
      touchValidated: (key, at, cacheControl) => rpc.notify(M.DISK_TOUCH_VALIDATED, { key, at, cacheControl }),
      touched: (paths) => rpc.notify(M.DISK_TOUCHED, paths),
      damaged: (key, index, path) => rpc.notify(M.DISK_DAMAGED, { key, index, path }),
      dropped: (key, rep) => rpc.notify(M.DISK_DROPPED, { key, rep }),
    },
    // An object another worker stored, or a new version of one: this worker serves it from disk.
    // One another worker revalidated: fresh here too, without a revalidation of our own.
    onApplied: (e) => {
      if (e.type === 'put') server?.cache.learnFromDisk(e.key);
      else if (e.type === 'meta') server?.cache.adoptFromDisk(e.key);
    },
  });
  disk.apply(init.snapshot);
  for (const e of early.splice(0)) disk.apply(e);

  const claims: SliceClaims = {
    claim: (key, index) => {
      let timer: NodeJS.Timeout | undefined;
      const giveUp = new Promise<ClaimVerdict>((resolve) => (timer = setTimeout(() => resolve('fetch'), CLAIM_WAIT_MS)));
      const asked = rpc.call<ClaimVerdict>(M.CLAIM, { key, index } satisfies M.ClaimBody).catch((): ClaimVerdict => 'fetch');
      return Promise.race([asked, giveUp]).finally(() => clearTimeout(timer));
    },
    release: (key, index) => rpc.notify(M.RELEASE, { key, index } satisfies M.ClaimBody),
  };

  playsFlush = setInterval(() => {
    if (plays.length === 0) return;
    rpc.notify(M.PLAYS_SEEN, plays);
    plays = [];
  }, PLAYS_FLUSH_MS);
  playsFlush.unref();

  server = createEdgeServer({
    config,
    edge: { ...edge, memoryBytes: Math.max(edge.sliceBytes, Math.floor(edge.memoryBytes / workers)) },
    logger,
    listen: { public: init.publicListen },
    tls: { service: init.tls, client: init.clientTls },
    worker: { disk, claims, seenPlays: new ForwardedSeenPlays((id) => plays.push(id)), workers, sessions: (sid, su) => sessions.add(sid, su) },
  });
  const s = server;
  s.setDrained(drained);
  s.setNodeStatus(nodeStatus);
  if (pendingReload) {
    s.applyReload(pendingReload);
    pendingReload = undefined;
  }

  rpc.on(M.ADOPT, (key: string) => s.cache.adoptFromDisk(key));
  rpc.handle(M.PURGE, (b: M.PurgeBody) => s.cache.purge(b));
  rpc.handle(M.STATS, async ({ resetLoopDelay }: M.StatsBody): Promise<WorkerStats> => {
    const health = s.health({ resetLoopDelay });
    const cpu = process.cpuUsage();
    return {
      health,
      // Plain data only: a metric object may carry functions, which IPC cannot clone.
      metrics: (await s.metrics.registry.getMetricsAsJSON()).map(({ name, help, type, values, aggregator }) => ({ name, help, type, values, aggregator })),
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      rssBytes: process.memoryUsage.rss(),
      connections: health.connections,
      eventLoopDelaySeconds: health.eventLoopDelayMs / 1000,
    };
  });

  if (draining) return;
  const { publicUrl } = await s.start();
  rpc.notify(M.READY, { publicUrl });
}
