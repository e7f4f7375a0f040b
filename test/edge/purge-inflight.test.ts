import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { objectKey } from '../../src/common/paths.js';
import { ClaimTable, type ClaimVerdict } from '../../src/edge/cluster/claim-table.js';
import { purgeNode } from '../../src/edge/cluster/node-purge.js';
import { DiskTier, type WriteOutcome } from '../../src/edge/disk-tier.js';
import type { SliceClaims } from '../../src/edge/edge-cache.js';
import { SeenPlays } from '../../src/edge/play-seen.js';
import { TEST_ADMIN_TOKEN, randomTitle, tempDir, testCluster, writeMedia } from '../helpers/cluster.js';
import { startEdge, type RunningEdge } from '../helpers/edge-harness.js';
import { TestOrigin } from '../helpers/test-origin.js';

/**
 * A purge answered 200 means the next request is a MISS of the current version (issue 14, P1-1):
 * a slice fetch that started before the purge — fetched, finished and still being stored (a slow
 * disk write; on a multi-worker node, the primary's commit) — is neither joined nor served as a
 * disk hit by a request that comes after it, and never stored.
 */
const S = 64 * 1024;

/** A gate: `wait()` blocks until `open()`. */
function gate(): { wait: () => Promise<void>; open: () => void; waiting: () => number } {
  let open!: () => void;
  let waiting = 0;
  const opened = new Promise<void>((r) => (open = r));
  return {
    wait: async () => {
      waiting++;
      await opened;
    },
    open,
    waiting: () => waiting,
  };
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('edge: a purge drops the fetches still being stored', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  const edges: RunningEdge[] = [];
  beforeAll(async () => {
    await origin.start();
  });
  afterAll(async () => {
    for (const e of edges) await e.close().catch(() => {});
    await origin.close();
  });

  function publish(title: string, file: string, size: number, v: number): Buffer {
    const data = writeMedia(root, title, file, size, 200 + v);
    origin.behaviour.set(`/o/${title}/${file}`, { etag: `"v${v}"` });
    return data;
  }

  /** Version 1 fetched through `e` while its store is held; version 2 published; then `purge`. */
  async function fetchedThenPurged(e: RunningEdge, held: ReturnType<typeof gate>, purge: (title: string) => Promise<void>) {
    const title = randomTitle();
    const v1 = publish(title, 'a.mp4', 2 * S, 1);
    const first = await e.get(title, 'a.mp4');
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.body.equals(v1)).toBe(true);
    // Both slices are whole and their stores are held open: the fetches are still in the lock.
    await until('both stores to be held', () => held.waiting() >= 2);
    const v2 = publish(title, 'a.mp4', 2 * S, 2);
    const hitsBefore = origin.countFor(`/o/${title}/a.mp4`);
    await purge(title);
    return { title, v2, hitsBefore };
  }

  it('single process: the request after the purge is a MISS of the new version while the old one is still being written', async () => {
    const e = await startEdge(testCluster({ sliceBytes: S }), origin.url);
    edges.push(e);
    const held = gate();
    const disk = e.server.disk;
    const write = disk.write.bind(disk);
    disk.write = async (...args) => {
      // The write itself runs now (what it checks is checked before the purge); its answer is slow.
      const done = write(...args);
      await held.wait();
      return done;
    };
    const { title, v2, hitsBefore } = await fetchedThenPurged(e, held, async (t) => {
      const res = await request(`${e.adminUrl}/purge`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ title: t }),
      });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
    });

    const second = await e.get(title, 'a.mp4');
    expect(second.headers['x-cache']).toBe('MISS');
    expect(second.headers.etag).toBe('"v2"');
    expect(second.body.equals(v2)).toBe(true);
    expect(origin.countFor(`/o/${title}/a.mp4`)).toBeGreaterThan(hitsBefore);

    // The old fetches' writes, let go, keep nothing: the version on disk is the new one.
    held.open();
    disk.write = write;
    await e.idle();
    await until('the writes to end', () => e.server.cache.inflight === 0);
    const third = await e.get(title, 'a.mp4');
    expect(third.headers.etag).toBe('"v2"');
    expect(third.body.equals(v2)).toBe(true);
    expect(third.headers['x-cache']).not.toBe('MISS');
  });

  /**
   * One worker of a multi-worker node, in this process: a replica of the node's disk, the
   * primary's claim table, and what the worker sends the primary (claims, commits, purge
   * answers) on one ordered channel that the test may pause, as IPC is. `commitAnswered` runs
   * between the primary's commit and the worker hearing its answer.
   */
  async function workerNode(opts: { commitAnswered?: () => Promise<void> } = {}) {
    const config = testCluster({ sliceBytes: S });
    const edge = config.edges[0]!;
    const logger = createLogger('edge', 'silent', edge.id);
    const up = new Channel();
    let replica!: DiskTier;
    let e: RunningEdge | undefined;
    const owner = new DiskTier({ dir: edge.dataDir, capacityBytes: edge.diskBytes, sliceBytes: S, logger, onChange: (ev) => replica.apply(ev) });
    await owner.open();
    // The primary's claim table and commit handler, as node.ts wires them (this is worker 0).
    const table = new ClaimTable();
    replica = new DiskTier({
      dir: edge.dataDir,
      capacityBytes: edge.diskBytes,
      sliceBytes: S,
      logger,
      role: 'replica',
      remote: {
        commit: async (p): Promise<WriteOutcome> => {
          const outcome = await up.send(async () => {
            const o = await owner.commit(p);
            if (o === 'stored') table.stored(`${p.key}#${p.index}`);
            return o;
          });
          await opts.commitAnswered?.();
          return outcome;
        },
        touchValidated: (key, at, cc) => void up.send(() => owner.touchValidated(key, at, cc)),
        touched: (paths) => void up.send(() => owner.touched(paths)),
        damaged: (key, index, path) => void up.send(() => owner.damaged(key, index, path)),
        dropped: (key, rep) => void up.send(() => owner.dropIfCurrent(key, rep)),
      },
      // As worker.ts: objects the primary's disk gained are learnt.
      onApplied: (ev) => {
        if (ev.type === 'put') e?.server.cache.learnFromDisk(ev.key);
        else if (ev.type === 'meta') e?.server.cache.adoptFromDisk(ev.key);
      },
    });
    replica.apply(owner.snapshot());
    const claims: SliceClaims = {
      claim: (key, index) =>
        up.send(() => (owner.has(key, index) ? ('stored' as ClaimVerdict) : new Promise<ClaimVerdict>((resolve) => table.claim(`${key}#${index}`, 0, resolve)))),
      release: (key, index) =>
        void up.send(() => (owner.has(key, index) ? table.stored(`${key}#${index}`) : table.release(`${key}#${index}`, 0))),
    };
    e = await startEdge(config, origin.url, { worker: { disk: replica, claims, seenPlays: new SeenPlays(64, 'worker') } });
    edges.push(e);
    const w = e;
    return {
      e: w,
      owner,
      up,
      /** The primary's purge (EdgeNode.purge): the worker's answer travels back on `up`. */
      purge: (title: string) =>
        purgeNode({ title }, owner, async () => {
          const counts = w.server.cache.purge({ title });
          return [await up.send(() => counts)];
        }),
    };
  }

  it('a worker of a multi-worker node: the request after the purge is a MISS while the worker has not heard its commits answered', async () => {
    const held = gate();
    const node = await workerNode({ commitAnswered: held.wait });
    const { title, v2 } = await fetchedThenPurged(node.e, held, async (t) => {
      await node.purge(t);
    });

    const second = await node.e.get(title, 'a.mp4');
    expect(second.headers['x-cache']).toBe('MISS');
    expect(second.headers.etag).toBe('"v2"');
    expect(second.body.equals(v2)).toBe(true);

    held.open();
    await until('the commits to end', () => node.e.server.cache.inflight === 0);
    await node.e.idle();
    const stored = node.owner.meta(objectKey(title, 'a.mp4'));
    if (stored) expect(stored.etag).toBe('"v2"');
    const third = await node.e.get(title, 'a.mp4');
    expect(third.headers.etag).toBe('"v2"');
    expect(third.body.equals(v2)).toBe(true);
    await node.owner.close();
  });

  it('a worker of a multi-worker node: a commit the primary had not yet received when it purged its disk is purged too', async () => {
    const node = await workerNode();
    const title = randomTitle();
    // One slice: its claim, then its commit, are all the worker says to the primary.
    const v1 = publish(title, 'b.mp4', S / 2, 1);
    const claim = node.up.onSent;
    // The primary is busy from the moment it granted the claim: the commit waits on the channel.
    node.up.onSent = () => {
      node.up.pause();
      node.up.onSent = claim;
    };
    const first = await node.e.get(title, 'b.mp4');
    expect(first.body.equals(v1)).toBe(true);
    await until('the commit to be sent', () => node.up.waiting >= 1);

    const v2 = publish(title, 'b.mp4', S / 2, 2);
    const purged = node.purge(title);
    // The worker purged and answered; its answer is on the channel behind its commit.
    await until('the worker to answer the purge', () => node.up.waiting >= 2);
    node.up.resume();
    await purged;

    const second = await node.e.get(title, 'b.mp4');
    expect(second.headers['x-cache']).toBe('MISS');
    expect(second.headers.etag).toBe('"v2"');
    expect(second.body.equals(v2)).toBe(true);
    await node.e.idle();
    const stored = node.owner.meta(objectKey(title, 'b.mp4'));
    if (stored) expect(stored.etag).toBe('"v2"');
    await node.owner.close();
  });
});

/** Messages in order, delivered at once unless paused (then held, in order, until resumed). */
class Channel {
  private readonly queue: (() => void)[] = [];
  private paused = false;
  /** Called after each message is delivered. */
  onSent: () => void = () => {};

  get waiting(): number {
    return this.queue.length;
  }

  send<T>(deliver: () => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push(() => {
        let got: T | Promise<T>;
        try {
          got = deliver();
        } catch (err) {
          reject(err as Error);
          return;
        }
        void Promise.resolve(got).then(resolve, reject);
        this.onSent();
      });
      this.pump();
    });
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.pump();
  }

  private pump(): void {
    while (!this.paused && this.queue.length > 0) this.queue.shift()!();
  }
}
