import { formatCmsdDynamic } from '../common/cmsd.js';
import type { LoadBounds } from './bounded-load.js';
import type { EdgeState } from './health.js';

/**
 * Which ISPs are degraded, for the `du` (duress) of CMSD-Dynamic on the manifests steering
 * serves (CTA-5006): an ISP with an edge down, with no eligible edge, or whose every eligible
 * edge is at or over its load bound. Judged from the values ranking already uses — the health
 * states of the last poll, the eligible set, the bounds' `waived` (every eligible edge of the ISP
 * over, see bounded-load.ts) — so a player told "duress" is one ranking is already working
 * around. Pure; computed once per poll, not per request.
 */
export function degradedIsps(
  edges: Iterable<{ id: string; isp: string }>,
  stateOf: (edgeId: string) => EdgeState | undefined,
  eligible: ReadonlySet<string>,
  bounds: LoadBounds,
): Set<string> {
  const byIsp = new Map<string, { down: boolean; eligible: number; waived: number }>();
  for (const e of edges) {
    let g = byIsp.get(e.isp);
    if (!g) byIsp.set(e.isp, (g = { down: false, eligible: 0, waived: 0 }));
    if (stateOf(e.id) === 'down') g.down = true;
    if (!eligible.has(e.id)) continue;
    g.eligible++;
    if (bounds.byEdge.get(e.id)?.waived === true) g.waived++;
  }
  const out = new Set<string>();
  for (const [isp, g] of byIsp) if (g.down || g.eligible === 0 || g.waived === g.eligible) out.add(isp);
  return out;
}

/** The server id steering puts in its CMSD-Dynamic member (the cluster file names no steering id). */
export const STEERING_CMSD_ID = 'reelcdn-steering';

/**
 * The CMSD-Dynamic value of a manifest for a player of `isp`: steering's member with `du` while
 * the ISP is degraded, the bare member otherwise — an explicit "not under duress now" for a
 * player that keeps what each server of the list last said (absent `du` is false in CTA-5006).
 * A player matched to no ISP is ranked over every edge: duress when any ISP is degraded, as the
 * incident TTL of the steering manifest does (player-hints.ts steeringTtlFor).
 */
export function manifestCmsdDynamic(isp: string | undefined, degraded: ReadonlySet<string>): string {
  const du = isp === undefined ? degraded.size > 0 : degraded.has(isp);
  return du ? DURESS : CALM;
}

const DURESS = formatCmsdDynamic(STEERING_CMSD_ID, { du: true });
const CALM = formatCmsdDynamic(STEERING_CMSD_ID, {});
