/**
 * Steering's view of the edges during a chaos run, read from its admin `/v1/edges` a few times a
 * second: every change of state is logged with steering's reason, and an edge out of rotation
 * shows in the faults attached to each failure, so a failure says why steering sent no one there.
 */
import { request } from 'undici';

export interface SteeringWatch {
  stop(): Promise<void>;
}

interface EdgeView {
  id: string;
  state: string;
  eligible: boolean;
  reason: string;
}

export function watchSteering(opts: { adminUrl: string; token: string; everyMs: number; log: (line: string) => void; active: Set<string> }): SteeringWatch {
  const last = new Map<string, string>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const res = await request(`${opts.adminUrl}/v1/edges`, { headers: { authorization: `Bearer ${opts.token}` }, headersTimeout: 2000, bodyTimeout: 2000 });
        if (res.statusCode === 200) {
          const { edges } = (await res.body.json()) as { edges: EdgeView[] };
          for (const e of edges) {
            const label = e.eligible ? '' : `steering: ${e.id} ${e.state} (${e.reason})`;
            const before = last.get(e.id);
            if (before === undefined || before !== label) {
              if (before) opts.active.delete(before);
              if (label) opts.active.add(label);
              if (before !== undefined) opts.log(`steering: ${e.id} ${e.state}${e.eligible ? '' : ', out of rotation'} (${e.reason})`);
              last.set(e.id, label);
            }
          }
        } else {
          await res.body.dump();
        }
      } catch {
        // steering busy or gone: the players see that themselves
      }
      await new Promise((r) => setTimeout(r, opts.everyMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      for (const l of last.values()) if (l) opts.active.delete(l);
    },
  };
}
