import { formatCmsdDynamic, formatCmsdStatic, objectTypeOf } from '../common/cmsd.js';
import type { ObjectMeta } from '../common/response-plan.js';
import type { ClientThroughput } from './client-throughput.js';

/**
 * The CMSD (CTA-5006) an edge's answers carry: CMSD-Static per representation, CMSD-Dynamic per
 * node state and, for players, per client. Shared by the hit path and the object routes.
 */

export const CMSD_STATIC = 'cmsd-static';
export const CMSD_DYNAMIC = 'cmsd-dynamic';

/** CMSD-Static by representation (a meta is replaced, never mutated, when its object changes). */
const staticByMeta = new WeakMap<ObjectMeta, string>();

/** CMSD-Static of a representation of `file`: its object type, and VOD (every title an edge serves is). */
export function cmsdStaticOf(meta: ObjectMeta, file: string): string {
  let s = staticByMeta.get(meta);
  if (s === undefined) {
    s = formatCmsdStatic({ ot: objectTypeOf(file, meta.contentType), st: 'v' });
    staticByMeta.set(meta, s);
  }
  return s;
}

/** Only answers that carry the object (200, 206) have CMSD; errors, 304 and 412 do not. */
export function carriesCmsd(status: number): boolean {
  return status === 200 || status === 206;
}

/**
 * Pushes the CMSD headers of an answer of `status` from `meta` onto `out` (flat name, value
 * pairs, as `res.writeHead` takes them): none but on 200 and 206; `dynamic` when there is one.
 */
export function pushCmsdHeaders(out: string[], status: number, meta: ObjectMeta, file: string, dynamic: string | undefined): void {
  if (!carriesCmsd(status)) return;
  out.push(CMSD_STATIC, cmsdStaticOf(meta, file));
  if (dynamic !== undefined) out.push(CMSD_DYNAMIC, dynamic);
}

/**
 * CMSD-Dynamic of this edge's answers: its id; `du` (duress) while the node is overloaded or
 * draining; `etp` for a client whose recent transfers were measured (ClientThroughput), on
 * answers to requests that carry CMCD only — a player that speaks CMCD reads it, and other
 * answers stay the same for every client (a shared cache downstream may keep them) and cost no
 * lookup. The two values without `etp` are made once: an answer without `etp` costs the
 * `inDuress` call (the server passes a field read) and a string already made; only an answer
 * with `etp` makes a string.
 */
export class CmsdDynamicHeader {
  private readonly plain: string;
  private readonly duress: string;

  constructor(
    private readonly id: string,
    /** True while the node is overloaded or draining (read per answer: keep it a field read). */
    private readonly inDuress: () => boolean,
    readonly throughput: ClientThroughput | undefined,
  ) {
    this.plain = formatCmsdDynamic(id);
    this.duress = formatCmsdDynamic(id, { du: true });
  }

  /** The value every answer without an `etp` of its own carries (one of two strings made once). */
  shared(): string {
    return this.inDuress() ? this.duress : this.plain;
  }

  /** The value with `etp` for `client` (its address) when its throughput is known: a string of its own; else undefined. */
  own(client: string | undefined): string | undefined {
    const etp = this.throughput?.kbps(client);
    return etp === undefined ? undefined : formatCmsdDynamic(this.id, { etp, du: this.inDuress() });
  }

  /** The value for an answer to `client`; `player`: the request carried CMCD (only then may it get `etp`). */
  valueFor(client: string | undefined, player: boolean): string {
    return (player ? this.own(client) : undefined) ?? this.shared();
  }
}
