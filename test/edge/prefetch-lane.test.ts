import { describe, expect, it } from 'vitest';
import { LaneTicket, LaneTimeout, PrefetchLane, laneFor } from '../../src/edge/prefetch-lane.js';

/** The prefetch lane's rules over plain counts: prefetches take what clients leave, never the reverse. */
describe('PrefetchLane', () => {
  const settings = { slots: 2, clientShare: 3, maxWaitMs: 60_000 };
  const tick = () => new Promise((r) => setImmediate(r));

  it('gives a pool of 32 connections 8 prefetch slots, paused once clients hold 16', () => {
    expect(laneFor(32, 5000)).toEqual({ slots: 8, clientShare: 16, maxWaitMs: 5000 });
    expect(laneFor(1, 5000)).toEqual({ slots: 1, clientShare: 1, maxWaitMs: 5000 });
  });

  it('sends prefetches up to its slots; the next waits for one to end, in the order they asked', async () => {
    const lane = new PrefetchLane(settings);
    const a = await lane.prefetch(new LaneTicket());
    const b = await lane.prefetch(new LaneTicket());
    const order: string[] = [];
    void lane.prefetch(new LaneTicket()).then((r) => order.push('c') && r);
    void lane.prefetch(new LaneTicket()).then((r) => order.push('d') && r);
    await tick();
    expect(order).toEqual([]);
    expect(lane.load()).toEqual({ clients: 0, prefetches: 2, waiting: 2 });
    a();
    a(); // twice: nothing more
    await tick();
    expect(order).toEqual(['c']);
    b();
    await tick();
    expect(order).toEqual(['c', 'd']);
  });

  it('never makes a client wait, and holds prefetches back while clients hold their share', async () => {
    const lane = new PrefetchLane(settings);
    const clients = [lane.client(), lane.client(), lane.client()];
    let sent = false;
    void lane.prefetch(new LaneTicket()).then(() => (sent = true));
    // Clients beyond the prefetch slots still go at once.
    const more = [lane.client(), lane.client()];
    expect(lane.load()).toEqual({ clients: 5, prefetches: 0, waiting: 1 });
    await tick();
    expect(sent).toBe(false);
    for (const c of more) c();
    await tick();
    expect(sent).toBe(false); // 3 clients left: their share
    clients[0]!();
    await tick();
    expect(sent).toBe(true); // 2: under it
  });

  it('sends a waiting prefetch at once, as a client, when a client joins it', async () => {
    const lane = new PrefetchLane(settings);
    await lane.prefetch(new LaneTicket());
    await lane.prefetch(new LaneTicket());
    const ticket = new LaneTicket();
    let release: (() => void) | undefined;
    void lane.prefetch(ticket).then((r) => (release = r));
    await tick();
    expect(release).toBeUndefined();
    ticket.promote();
    await tick();
    expect(release).toBeDefined();
    expect(lane.load()).toEqual({ clients: 1, prefetches: 2, waiting: 0 });
    release!();
    expect(lane.load().clients).toBe(0);
    // Promoted before it asked: it does not wait either.
    const early = new LaneTicket();
    early.promote();
    (await lane.prefetch(early))();
  });

  it('gives up on a prefetch that waited maxWaitMs', async () => {
    const lane = new PrefetchLane({ ...settings, slots: 1, maxWaitMs: 20 });
    await lane.prefetch(new LaneTicket());
    await expect(lane.prefetch(new LaneTicket())).rejects.toBeInstanceOf(LaneTimeout);
    expect(lane.load().waiting).toBe(0);
  });
});
