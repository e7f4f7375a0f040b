import { connect, type Socket } from 'node:net';

/** A plain TCP client to an HTTP port: what it received, and when the server closed it. */
export interface RawClient {
  socket: Socket;
  /** Everything received so far (latin1). */
  text(): string;
  /** Resolves once the server has closed the connection (or it failed). */
  closed: Promise<void>;
  isClosed(): boolean;
  /** Resolves once the server has closed the connection, rejects after timeoutMs. */
  closedWithin(timeoutMs?: number): Promise<void>;
  /** Resolves when the received text matches, rejects after timeoutMs. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  send(data: string): void;
  destroy(): void;
}

/** Connects to `url`'s host and port; resolves once the TCP connection is up. */
export function rawClient(url: string): Promise<RawClient> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.hostname, port: Number(u.port) });
    let received = '';
    let isClosed = false;
    const waiters = new Set<() => void>();
    const closed = new Promise<void>((res) => {
      socket.once('close', () => {
        isClosed = true;
        for (const w of waiters) w();
        res();
      });
    });
    socket.on('data', (d) => {
      received += d.toString('latin1');
      for (const w of waiters) w();
    });
    socket.on('error', () => {});
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve({
        socket,
        text: () => received,
        closed,
        isClosed: () => isClosed,
        closedWithin: (timeoutMs = 5000) =>
          new Promise<void>((res, rej) => {
            const timer = setTimeout(() => rej(new Error(`still open after ${timeoutMs} ms; got ${JSON.stringify(received.slice(0, 200))}`)), timeoutMs);
            void closed.then(() => {
              clearTimeout(timer);
              res();
            });
          }),
        waitFor(re, timeoutMs = 5000) {
          return new Promise((res, rej) => {
            const check = () => {
              if (re.test(received)) {
                done();
                res(received);
              } else if (isClosed) {
                done();
                rej(new Error(`closed before ${re}; got ${JSON.stringify(received.slice(0, 200))}`));
              }
            };
            const timer = setTimeout(() => {
              done();
              rej(new Error(`no ${re} within ${timeoutMs} ms; got ${JSON.stringify(received.slice(0, 200))}`));
            }, timeoutMs);
            const done = () => {
              clearTimeout(timer);
              waiters.delete(check);
            };
            waiters.add(check);
            check();
          });
        },
        send: (data) => void socket.write(data),
        destroy: () => socket.destroy(),
      });
    });
    socket.once('error', reject);
  });
}

/** Resolves when `pred` holds, polling; rejects after timeoutMs with `what`. */
export async function until(pred: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await pred())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
