/**
 * Calls and notices over a process IPC channel, both ways between an edge node's primary and a
 * worker. Messages are structured clones (the cluster uses 'advanced' serialization), and one
 * channel keeps their order: a notice sent before a reply arrives before it — the disk index
 * relies on that (a worker learns a slice is stored before it is told to read it).
 */

/** The two ends: `process` in a worker, a cluster `Worker` in the primary. */
export interface Channel {
  /** With a callback, a send on a channel that closed reports to it rather than as an 'error' event. */
  send(message: unknown, callback: (err: Error | null) => void): unknown;
  on(event: 'message', listener: (message: unknown) => void): unknown;
}

type Wire =
  | { rpc: 'call'; id: number; t: string; body: unknown }
  | { rpc: 'reply'; id: number; ok: true; value: unknown }
  | { rpc: 'reply'; id: number; ok: false; error: string }
  | { rpc: 'note'; t: string; body: unknown };

export class RpcClosed extends Error {
  constructor() {
    super('the other process is gone');
    this.name = 'RpcClosed';
  }
}

export class Rpc {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private readonly handlers = new Map<string, (body: never) => unknown>();
  private readonly listeners = new Map<string, (body: never) => void>();
  private closed = false;

  constructor(
    private readonly channel: Channel,
    private readonly onError: (err: Error, what: string) => void = () => {},
  ) {
    channel.on('message', (m) => this.receive(m as Wire));
  }

  call<T>(t: string, body?: unknown): Promise<T> {
    if (this.closed) return Promise.reject(new RpcClosed());
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.post({ rpc: 'call', id, t, body });
    });
  }

  notify(t: string, body?: unknown): void {
    if (!this.closed) this.post({ rpc: 'note', t, body });
  }

  /** Answers calls of type `t`; a throw becomes the caller's rejection. */
  handle<B, R>(t: string, fn: (body: B) => R | Promise<R>): void {
    this.handlers.set(t, fn as (body: never) => unknown);
  }

  on<B>(t: string, fn: (body: B) => void): void {
    this.listeners.set(t, fn as (body: never) => void);
  }

  /** The channel is gone: pending calls fail, later ones fail at once. */
  close(): void {
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new RpcClosed());
    this.pending.clear();
  }

  private post(w: Wire): void {
    if (this.closed) return;
    // The other process may be gone a moment before its exit is seen here (a crash, a drain):
    // an unheard 'error' event would take this process down with it.
    const failed = (err: Error | null) => {
      if (err) this.onError(err, `send ${w.rpc}`);
    };
    try {
      this.channel.send(w, failed);
    } catch (err) {
      failed(err as Error);
    }
  }

  private receive(w: Wire): void {
    if (this.closed || !w || typeof w !== 'object' || !('rpc' in w)) return;
    if (w.rpc === 'reply') {
      const p = this.pending.get(w.id);
      if (!p) return;
      this.pending.delete(w.id);
      if (w.ok) p.resolve(w.value);
      else p.reject(new Error(w.error));
      return;
    }
    if (w.rpc === 'note') {
      const fn = this.listeners.get(w.t);
      if (!fn) return;
      try {
        fn(w.body as never);
      } catch (err) {
        this.onError(err as Error, `notice ${w.t}`);
      }
      return;
    }
    const fn = this.handlers.get(w.t);
    if (!fn) {
      this.post({ rpc: 'reply', id: w.id, ok: false, error: `no handler for ${w.t}` });
      return;
    }
    Promise.resolve()
      .then(() => fn(w.body as never))
      .then(
        (value) => this.post({ rpc: 'reply', id: w.id, ok: true, value }),
        (err: unknown) => this.post({ rpc: 'reply', id: w.id, ok: false, error: (err as Error)?.message ?? String(err) }),
      );
  }
}
