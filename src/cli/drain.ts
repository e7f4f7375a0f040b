import { findEdge } from '../common/config.js';
import { type CliArgs, type Command, CONFIG_OPTION, CliError } from './command.js';
import { type AdminClient, Unreachable, refusal, withAdminClient } from './admin-client.js';

/**
 * `reelcdn drain` / `undrain`: the edge is asked directly (POST /drain on its admin port) — it
 * is what every steering replica polls, so the drain holds whichever steering runs — then the
 * command waits until steering's own view agrees (GET /v1/edges), so that when it returns new
 * sessions go elsewhere (drain) or may come back (undrain).
 */

const options = { ...CONFIG_OPTION, id: { type: 'string' }, 'no-wait': { type: 'boolean' } } as const;

export const drain: Command = {
  name: 'drain',
  synopsis: 'drain    --config FILE --id EDGE_ID [--no-wait]',
  summary: 'steer new sessions away from an edge; it keeps\nserving (and running) until undrain',
  help: `Asks the edge (POST /drain on its admin port) to report "draining": its /health answers 503,
so steering stops sending it new sessions, while players already on it keep being served and
the process keeps running. Then waits until steering shows the edge down (draining). A drain
is not kept across a restart of the edge. Exit 1 if the edge cannot be reached or refuses, or
steering does not confirm in time (the edge is drained all the same).

Options:
  --config FILE    the cluster file
  --id EDGE_ID     the edge
  --no-wait        return once the edge is drained, without waiting for steering`,
  options,
  admin: true,
  run: (args) => drainOrUndrain(args, true),
};

export const undrain: Command = {
  name: 'undrain',
  synopsis: 'undrain  --config FILE --id EDGE_ID [--no-wait]',
  summary: 'end a drain: steering sends new sessions to\nthe edge again',
  help: `Asks the edge (POST /undrain on its admin port) to report its health as it is again, then
waits until steering takes it back (up after steering.upAfter good polls). Exit 1 if the edge
cannot be reached or refuses, or steering does not take it back in time.

Options:
  --config FILE    the cluster file
  --id EDGE_ID     the edge
  --no-wait        return once the edge is undrained, without waiting for steering`,
  options,
  admin: true,
  run: (args) => drainOrUndrain(args, false),
};

async function drainOrUndrain(args: CliArgs, on: boolean): Promise<void> {
  const config = args.config();
  const edge = findEdge(config, args.need('id', 'EDGE_ID'));
  const verb = on ? 'drain' : 'undrain';
  const st = config.steering;
  await withAdminClient(config, async (c) => {
    let a;
    try {
      a = await c.call(`${edge.adminUrl}/${verb}`, { body: {} });
    } catch (err) {
      if (err instanceof Unreachable) throw new CliError(`${edge.id}'s admin port ${edge.adminUrl} cannot be reached (${err.why}): not ${verb}ed`);
      throw err;
    }
    if (a.status !== 200) throw refusal(edge.id, a);
    const changed = (a.json as { changed?: boolean } | undefined)?.changed;
    process.stdout.write(
      on
        ? `${edge.id}: ${changed === false ? 'already draining' : 'draining'} — /health answers 503, players on it are still served\n`
        : `${edge.id}: ${changed === false ? 'was not drained' : 'undrained'} — /health reports it as it is\n`,
    );
    if (args.values['no-wait']) return;
    // A drain shows at steering's next poll; an undrain after upAfter good ones. Plus slack.
    const waitMs = st.healthIntervalMs * (on ? 2 : st.upAfter + 2) + 5000;
    const seen = await waitForSteering(c, st.adminUrl, edge.id, on, waitMs);
    if (seen.ok) {
      process.stdout.write(on ? `steering: ${edge.id} ${seen.state} (${seen.reason}): new sessions go to other edges\n` : `steering: ${edge.id} ${seen.state}: takes new sessions again\n`);
      return;
    }
    throw new CliError(`${edge.id} is ${on ? 'draining' : 'undrained'}, but steering (${st.adminUrl}) ${seen.why} after ${Math.round(waitMs / 1000)} s`);
  });
}

/** Polls steering's /v1/edges until it shows the edge drained (down, draining) or back (eligible). */
async function waitForSteering(
  c: AdminClient,
  adminUrl: string,
  id: string,
  drained: boolean,
  waitMs: number,
): Promise<{ ok: true; state: string; reason: string } | { ok: false; why: string }> {
  const deadline = Date.now() + waitMs;
  let why = 'did not answer';
  for (;;) {
    try {
      const a = await c.call(`${adminUrl}/v1/edges`, { timeoutMs: 5000 });
      if (a.status !== 200) why = a.status === 401 ? 'refused the admin token (HTTP 401)' : `answered HTTP ${a.status}`;
      else {
        const e = ((a.json as { edges?: { id: string; state: string; reason: string; eligible: boolean }[] }).edges ?? []).find((x) => x.id === id);
        if (!e) why = `does not know ${id}`;
        else if (drained ? !e.eligible && e.reason === 'draining' : e.eligible) return { ok: true, state: e.state, reason: e.reason };
        else why = `still shows it ${e.state} (${e.reason})`;
      }
    } catch (err) {
      if (!(err instanceof Unreachable)) throw err;
      why = `cannot be reached (${err.why})`;
    }
    if (Date.now() >= deadline) return { ok: false, why };
    await new Promise((r) => setTimeout(r, 200));
  }
}
