/**
 * What TLS costs a server per byte it sends, from one bench run: the server's CPU µs per answer
 * over HTTPS minus over plain HTTP (same requests, same client, same core), divided by the bytes
 * of one answer. CPU per answer is the figure that survives a busy machine; req/s does not.
 */

const MiB = 1024 * 1024;

/** One server's figures for a workload and its HTTPS twin. */
export interface CostInput {
  server: string;
  /** The plain workload (`hot-2m`); the HTTPS one is `tls-<workload>`. */
  workload: string;
  plainCpuUs: number;
  tlsCpuUs: number;
  /** Bytes the client read per answer over HTTPS (headers included: TLS encrypts them too). */
  bytesPerAnswer: number;
}

export interface TlsCost extends CostInput {
  /** CPU µs TLS adds to one answer. */
  extraUs: number;
  /** … per MiB sent. */
  usPerMiB: number;
  /** TLS's share of the CPU of an HTTPS answer. */
  share: number;
  /** MiB/s one core would encrypt and send if it did nothing else (1 s / usPerMiB). */
  mibPerCoreSecond: number;
}

export function tlsCost(i: CostInput): TlsCost | undefined {
  if (!(i.plainCpuUs > 0) || !(i.tlsCpuUs > 0) || !(i.bytesPerAnswer > 0)) return undefined;
  const extraUs = i.tlsCpuUs - i.plainCpuUs;
  const usPerMiB = extraUs / (i.bytesPerAnswer / MiB);
  return { ...i, extraUs, usPerMiB, share: extraUs / i.tlsCpuUs, mibPerCoreSecond: usPerMiB > 0 ? 1e6 / usPerMiB : Number.POSITIVE_INFINITY };
}

/** The shape of a measured run this needs (report.ts's Measured has it). */
export interface RunFigures {
  server: string;
  workload: string;
  workers: number;
  cpuUsPerAnswer: number;
  load: { reqPerSec: number; bytesPerSec: number };
}

/**
 * Every (server, workload) with both a plain and a `tls-` run on one core, in the order the
 * HTTPS runs appear. The ceiling's bare node:http server counts too: its cost is Node's floor.
 */
export function tlsCosts(runs: RunFigures[]): TlsCost[] {
  const out: TlsCost[] = [];
  for (const t of runs) {
    if (t.workers !== 1 || !t.workload.startsWith('tls-')) continue;
    const workload = t.workload.slice('tls-'.length);
    const p = runs.find((r) => r.workers === 1 && r.server === t.server && r.workload === workload);
    if (!p || !(t.load.reqPerSec > 0)) continue;
    const c = tlsCost({ server: t.server, workload, plainCpuUs: p.cpuUsPerAnswer, tlsCpuUs: t.cpuUsPerAnswer, bytesPerAnswer: t.load.bytesPerSec / t.load.reqPerSec });
    if (c) out.push(c);
  }
  return out;
}
