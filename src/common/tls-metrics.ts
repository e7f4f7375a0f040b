import { Gauge, type Registry } from 'prom-client';
import type { TlsMaterial } from './tls.js';

/** A role's TLS listeners by the `listener` label; each says what its new connections get now. */
export interface ServedCertificates {
  public?: () => TlsMaterial | undefined;
  admin?: () => TlsMaterial | undefined;
}

/**
 * `reelcdn_tls_certificate_expiry_seconds{listener="public|admin"}`: when the certificate each
 * TLS listener serves expires (notAfter, unix seconds), read at every scrape from what the
 * listener holds — a reload that swaps it moves the gauge with it. Prometheus alerts on
 * `reelcdn_tls_certificate_expiry_seconds - time() < 14 * 86400`. A plain-HTTP listener has no series.
 */
export function watchCertificateExpiry(registry: Registry, served: ServedCertificates): Gauge<'listener'> {
  return new Gauge({
    name: 'reelcdn_tls_certificate_expiry_seconds',
    help: 'When the certificate a TLS listener serves expires (its notAfter), in unix seconds; updated by a reload that swaps it',
    labelNames: ['listener'],
    registers: [registry],
    collect() {
      for (const listener of ['public', 'admin'] as const) {
        const m = served[listener]?.();
        if (m === undefined) this.remove({ listener });
        else this.set({ listener }, Math.floor(new Date(m.notAfter).getTime() / 1000));
      }
    },
  });
}
