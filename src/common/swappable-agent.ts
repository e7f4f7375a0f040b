import { type Agent, Dispatcher } from 'undici';
import { type ClientTls, clientTlsKey } from './tls.js';

/**
 * An undici dispatcher whose TLS (the CAs it trusts, the certificate it shows) can change on
 * reload while its users keep holding the same object: each request goes to the current agent;
 * a change builds a new agent and closes the old one gracefully (its requests in flight finish,
 * then its connections close). Nothing changes when the bytes are the same.
 */
export class SwappableAgent extends Dispatcher {
  private agent: Agent;
  private tlsKey: string;
  private closing: Promise<void> | undefined;
  private readonly retired = new Set<Promise<void>>();

  constructor(
    private readonly make: (tls: ClientTls | undefined) => Agent,
    tls: ClientTls | undefined,
  ) {
    super();
    this.agent = make(tls);
    this.tlsKey = clientTlsKey(tls);
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.agent.dispatch(opts, handler);
  }

  /** New connections use this TLS; returns whether it differed from the current one. */
  setTls(tls: ClientTls | undefined): boolean {
    const key = clientTlsKey(tls);
    if (this.closing !== undefined || key === this.tlsKey) return false;
    const old = this.agent;
    this.agent = this.make(tls);
    this.tlsKey = key;
    const done = old.close().catch(() => undefined);
    this.retired.add(done);
    void done.then(() => this.retired.delete(done));
    return true;
  }

  // Dispatcher's close and destroy are overloaded (promise or callback); both forms are served.
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.closing ??= Promise.all([this.agent.close(), ...this.retired]).then(() => undefined);
    if (!callback) return this.closing;
    void this.closing.then(callback, callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    const err = typeof a === 'function' ? null : (a ?? null);
    const callback = typeof a === 'function' ? a : b;
    this.closing ??= Promise.resolve();
    const done = this.agent.destroy(err).then(() => undefined);
    if (!callback) return done;
    void done.then(callback, callback);
  }
}
