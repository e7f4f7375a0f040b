import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/common/clock.js';
import { type ClusterConfig, ConfigError, type EdgeConfig } from '../../src/common/config.js';
import { SwappableAgent } from '../../src/common/swappable-agent.js';
import { type ClientTls, connectFor } from '../../src/common/tls.js';
import type { HealthParams, PollResult } from '../../src/steering/health.js';
import { HealthPoller } from '../../src/steering/health-poller.js';
import { SeenPlaysPoller } from '../../src/steering/seen-plays-poller.js';
import { buildTopology, steeringChanges } from '../../src/steering/topology.js';
import { makeTestPki } from '../helpers/certs.js';
import { tempDir, testCluster } from '../helpers/cluster.js';

const silent = pino({ level: 'silent' });
const params: HealthParams = { downAfter: 2, upAfter: 1, thresholds: { maxErrorRatio: 0.5, minRequestsForErrorRatio: 50, maxDiskUsedRatio: 0.9, maxConnections: 100 } };
const edge = (id: string, port = 1, isp = 'isp-a'): EdgeConfig => ({ ...testCluster().edges[0]!, id, isp, url: `http://127.0.0.1:${port}`, adminUrl: `http://127.0.0.1:${port + 1}` });
const ok = (id: string): PollResult => ({ ok: true, report: { status: 'ok', id, connections: 1, errorRatio: 0 }, latencyMs: 1 });

/** A poller whose fetcher answers when the test says, recording what it was asked. */
function scriptedPoller(edges: EdgeConfig[]) {
  const clock = new FakeClock();
  const asked: string[] = [];
  const pending: { url: string; answer: (r: PollResult) => void }[] = [];
  const polled: string[] = [];
  const poller = new HealthPoller({
    edges,
    params,
    intervalMs: 1000,
    clock,
    logger: silent,
    fetcher: (e) =>
      new Promise<PollResult>((res) => {
        asked.push(`${e.id}@${e.adminUrl}`);
        pending.push({ url: e.adminUrl, answer: res });
      }),
    onPoll: (id) => polled.push(id),
  });
  /** Answers every poll out with ok. */
  const answerAll = async () => {
    for (const p of pending.splice(0)) p.answer(ok('x'));
    await new Promise((r) => setImmediate(r));
  };
  return { clock, asked, pending, polled, poller, answerAll };
}

describe('HealthPoller.setEdges', () => {
  it('pollsANewEdgeAtOnceAndRanksItWithoutWaitingForTheNextRound', async () => {
    const w = scriptedPoller([edge('e1')]);
    w.poller.start();
    await w.answerAll();
    expect(w.poller.eligibleIds()).toEqual(new Set(['e1']));
    const moved = w.poller.setEdges([edge('e1'), edge('e2', 3)], params);
    expect(moved).toEqual({ added: ['e2'], removed: [], restarted: [] });
    expect(w.poller.get('e2')!.state).toBe('unknown');
    // No clock moved: the new edge was asked right away, the old one not again.
    expect(w.asked).toEqual(['e1@http://127.0.0.1:2', 'e2@http://127.0.0.1:4']);
    await w.answerAll();
    expect(w.poller.eligibleIds()).toEqual(new Set(['e1', 'e2']));
    await w.poller.stop();
  });

  it('forgetsARemovedEdgeAndDropsItsPollInFlight', async () => {
    const w = scriptedPoller([edge('e1'), edge('e2', 3)]);
    w.poller.start();
    await w.answerAll();
    w.clock.advance(1000); // the next round goes out…
    expect(w.pending).toHaveLength(2);
    expect(w.poller.setEdges([edge('e1')], params)).toEqual({ added: [], removed: ['e2'], restarted: [] });
    expect(w.poller.get('e2')).toBeUndefined();
    w.polled.length = 0;
    await w.answerAll(); // …and e2's answer comes back after the reload
    expect(w.polled).toEqual(['e1']);
    expect(w.poller.get('e2')).toBeUndefined();
    expect([...w.poller.snapshot().keys()]).toEqual(['e1']);
    await w.poller.stop();
  });

  it('restartsAnEdgeWhoseUrlChangedAndIgnoresTheOldAddresssAnswer', async () => {
    const w = scriptedPoller([edge('e1')]);
    w.poller.start();
    await w.answerAll();
    expect(w.poller.get('e1')!.state).toBe('up');
    w.clock.advance(1000);
    const old = w.pending.splice(0);
    expect(w.poller.setEdges([edge('e1', 7)], params)).toEqual({ added: [], removed: [], restarted: ['e1'] });
    expect(w.poller.get('e1')!.state).toBe('unknown');
    expect(w.asked.at(-1)).toBe('e1@http://127.0.0.1:8');
    for (const p of old) p.answer(ok('e1'));
    await new Promise((r) => setImmediate(r));
    expect(w.poller.get('e1')!.state).toBe('unknown'); // the old machine's answer says nothing of the new
    await w.answerAll();
    expect(w.poller.get('e1')!.state).toBe('up');
    await w.poller.stop();
  });

  it('keepsTheStateOfAnEdgeOnlyItsOtherFieldsChangedAndTakesNewThresholdsAtTheNextPoll', async () => {
    const w = scriptedPoller([edge('e1')]);
    w.poller.start();
    await w.answerAll();
    const strict = { ...params, thresholds: { ...params.thresholds, maxConnections: 0 } };
    expect(w.poller.setEdges([{ ...edge('e1'), diskBytes: 1 }], strict)).toEqual({ added: [], removed: [], restarted: [] });
    expect(w.poller.get('e1')!.state).toBe('up');
    w.clock.advance(1000);
    await w.answerAll();
    expect(w.poller.get('e1')!.state).toBe('down'); // 1 connection, above 0
    await w.poller.stop();
  });
});

describe('SeenPlaysPoller.setEdges', () => {
  it('readsANewEdgeAndStopsReadingARemovedOne', async () => {
    const clock = new FakeClock();
    const asked: string[] = [];
    const poller = new SeenPlaysPoller({
      edges: [edge('e1')],
      intervalMs: 1000,
      clock,
      logger: silent,
      fetcher: async (e, since) => {
        asked.push(`${e.id}:${since}`);
        return { instance: `i-${e.adminUrl}`, next: 5, ids: [], more: false, lost: false };
      },
      onSeen: () => undefined,
    });
    await poller.pollOnce();
    poller.setEdges([edge('e2', 3)]);
    await poller.pollOnce();
    // e1 moved back under another address: a new ring, read from its start.
    poller.setEdges([edge('e2', 3), edge('e1', 9)]);
    await poller.pollOnce();
    expect(asked).toEqual(['e1:0', 'e2:0', 'e2:5', 'e1:0']);
  });
});

describe('steering topology', () => {
  const cluster = (over: Record<string, unknown> = {}): ClusterConfig => testCluster({}, { isps: [{ id: 'isp-a', prefixes: ['10.0.0.0/8'] }, { id: 'isp-b', prefixes: ['10.1.0.0/16'] }], ...over });

  it('refusesAPrefixListedForTwoIspsNamingIsps', () => {
    // The file's own checks let it through; the table cannot hold it.
    const c = cluster({ isps: [{ id: 'isp-a', prefixes: ['10.0.0.0/8'] }, { id: 'isp-b', prefixes: ['10.0.0.0/8'] }] });
    expect(() => buildTopology(c)).toThrow(ConfigError);
    try {
      buildTopology(c);
    } catch (err) {
      expect((err as ConfigError).field).toBe('isps');
      expect((err as ConfigError).message).toMatch(/^isps: .*two different owners/);
    }
  });

  it('changesItsSigningTagWhenASecretChangesUnderTheSameKeyId', () => {
    const a = cluster();
    const b = { ...a, signing: { ...a.signing, keys: { k1: 'another-secret-0123456789abcdef' } } };
    expect(buildTopology(a).signingTag).toBe(buildTopology({ ...a }).signingTag);
    expect(buildTopology(b).signingTag).not.toBe(buildTopology(a).signingTag);
  });

  it('splitsChangedFieldsIntoTakenAndNeedingARestart', () => {
    const a = cluster();
    const b: ClusterConfig = {
      ...a,
      steering: { ...a.steering, url: 'http://127.0.0.1:9', downAfter: 5, mpdCacheBytes: 1 },
      edges: [{ ...a.edges[0]!, diskBytes: 1 }], // steering does not care
      isps: [a.isps[0]!, { ...a.isps[1]!, prefixes: ['10.2.0.0/16'] }],
    };
    expect(steeringChanges(a, b)).toEqual({ applied: ['isps', 'steering.downAfter'], needsRestart: ['steering.url', 'steering.mpdCacheBytes'] });
    expect(steeringChanges(a, a)).toEqual({ applied: [], needsRestart: [] });
  });
});

describe('SwappableAgent', () => {
  const dir = tempDir('reelcdn-swappable-');
  const right = makeTestPki(dir, ['server']);
  const wrong = makeTestPki(tempDir('reelcdn-swappable-other-'), [], { caName: 'another CA' });
  let server: Server;
  let url: string;
  const make = (tls: ClientTls | undefined) => new Agent({ connect: connectFor(tls, 2000) });

  // The server's destination trusts this CA (whatever bundle of CAs it is).
  const trusting = (caPem: string): ClientTls => ({ cas: new Map([[url.replace(/\/$/, ''), Buffer.from(caPem)]]) });

  beforeAll(async () => {
    server = createHttpsServer({ cert: right.certs.server!.certPem, key: right.certs.server!.keyPem }, (req, res) => {
      // A slow answer when asked: in flight across a swap.
      setTimeout(() => res.end('ok'), req.url === '/slow' ? 300 : 0);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => new Promise<void>((r) => server.close(() => r())));

  it('trustsTheNewCaFromTheSwapOnAndFinishesWhatWasInFlight', async () => {
    const agent = new SwappableAgent(make, trusting(wrong.ca.certPem));
    await expect(request(`${url}/`, { dispatcher: agent })).rejects.toThrow();
    expect(agent.setTls(trusting(wrong.ca.certPem))).toBe(false); // same bytes: nothing to do
    expect(agent.setTls(trusting(right.ca.certPem))).toBe(true);
    const slow = request(`${url}/slow`, { dispatcher: agent });
    await new Promise((r) => setTimeout(r, 50));
    // Swapped again while /slow is out: it still completes on the agent it started on.
    agent.setTls(trusting(right.ca.certPem + wrong.ca.certPem));
    const res = await slow;
    expect(await res.body.text()).toBe('ok');
    expect(await (await request(`${url}/`, { dispatcher: agent })).body.text()).toBe('ok');
    await agent.close();
    await agent.close(); // twice is fine
  });
});
