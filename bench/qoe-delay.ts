/**
 * A TCP relay with a fixed delay each way, put in front of the origin for the QoE bench: the
 * edges reach the origin at `origin.url`, which is this relay, and the origin listens elsewhere
 * (`reelcdn origin --listen`). Every chunk waits `oneWayMs` before it is passed on, in order, in
 * both directions, so a connection costs one round trip and each request at least one more, as
 * an origin across a continent would. It also counts the bytes the origin sent.
 */
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';

export interface DelayRelay {
  port: number;
  /** Bytes from the origin to its clients since the last reset. */
  bytesFromOrigin(): number;
  resetCount(): void;
  close(): Promise<void>;
}

/** Passes `from`'s chunks to `to` after `delayMs`, in order, keeping `from` paused while `to` is full. */
function delayedPipe(from: Socket, to: Socket, delayMs: number, count: (n: number) => void): void {
  from.on('data', (chunk: Buffer) => {
    count(chunk.length);
    // Same delay for every chunk: Node runs timers of one duration in the order they were set.
    setTimeout(() => {
      if (!to.destroyed && !to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    }, delayMs);
  });
  from.on('end', () => setTimeout(() => to.end(), delayMs));
}

export async function startDelayRelay(o: { listenPort: number; targetPort: number; oneWayMs: number }): Promise<DelayRelay> {
  let fromOrigin = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(o.targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      // One side failing ends the other: what a dropped connection across the network does.
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    // A side that closed takes the other with it once what it sent has been passed on.
    client.on('close', () => setTimeout(() => upstream.destroy(), o.oneWayMs + 50));
    upstream.on('close', () => setTimeout(() => client.destroy(), o.oneWayMs + 50));
    delayedPipe(client, upstream, o.oneWayMs, () => undefined);
    delayedPipe(upstream, client, o.oneWayMs, (n) => {
      fromOrigin += n;
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(o.listenPort, '127.0.0.1', () => ok());
  });
  return {
    port: (server.address() as AddressInfo).port,
    bytesFromOrigin: () => fromOrigin,
    resetCount: () => {
      fromOrigin = 0;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}
