import { availableParallelism } from 'node:os';
import { findEdge, workerCount } from '../common/config.js';
import { type Command, CONFIG_OPTION, UsageError } from './command.js';

/** The three long-running roles: origin, steering, edge. */

export const origin: Command = {
  name: 'origin',
  synopsis: 'origin   --config FILE',
  summary: 'run the origin',
  help: `Serves the catalog, the titles' files (/o/, signed) and the fill manifests, until SIGTERM.
SIGHUP (or \`reelcdn reload --role origin\`) reloads the cluster file.

Options:
  --config FILE   the cluster file`,
  options: CONFIG_OPTION,
  async run(args) {
    const { runOrigin } = await import('../origin/main.js');
    await runOrigin(args.config(), args.configPath());
  },
};

export const steering: Command = {
  name: 'steering',
  synopsis: 'steering --config FILE [--listen H:P] [--admin-listen H:P]',
  summary: 'run steering (a replica may bind its own address)',
  help: `Sends each player to an edge of its ISP (manifests, /v1/steer, /v1/locate) and polls every
edge's health, until SIGTERM. SIGHUP (or \`reelcdn reload --role steering\`) reloads the cluster file.

Options:
  --config FILE          the cluster file
  --listen H:P           bind the public port here instead of steering.url's
  --admin-listen H:P     bind the admin port here instead of steering.adminUrl's`,
  options: { ...CONFIG_OPTION, listen: { type: 'string' }, 'admin-listen': { type: 'string' } },
  async run(args) {
    const { runSteering } = await import('../steering/main.js');
    const { values } = args;
    const listen = {
      ...(typeof values.listen === 'string' ? { public: hostPort(values.listen, '--listen') } : {}),
      ...(typeof values['admin-listen'] === 'string' ? { admin: hostPort(values['admin-listen'], '--admin-listen') } : {}),
    };
    await runSteering(args.config(), { listen }, args.configPath());
  },
};

export const edge: Command = {
  name: 'edge',
  synopsis: 'edge     --config FILE --id EDGE_ID [--workers N]',
  summary: 'run one edge node (N processes on its port;\ndefault edges[].workers, else one per CPU)',
  help: `Serves /c/ from memory and disk, fills in its window and answers its admin port, until
SIGTERM drains it. SIGHUP (or \`reelcdn reload --role edge --id EDGE_ID\`) reloads the cluster file.

Options:
  --config FILE    the cluster file
  --id EDGE_ID     which of the file's edges this is
  --workers N      serving processes sharing the public port (default edges[].workers, else
                   one per CPU)`,
  options: { ...CONFIG_OPTION, id: { type: 'string' }, workers: { type: 'string' } },
  async run(args) {
    tuneHeapForServing();
    const cfg = args.config();
    const e = findEdge(cfg, args.need('id', 'EDGE_ID'));
    const w = args.values.workers;
    const workers = w === undefined ? (e.workers ?? availableParallelism()) : workerCount(w, '--workers', true);
    const { runEdge } = await import('../edge/main.js');
    await runEdge(cfg, e, workers, args.configPath());
  },
};

/** V8's young generation for a serving edge, MiB per semi-space (see tuneHeapForServing). */
const EDGE_SEMI_SPACE_MB = 8;

/**
 * Node 24 lets V8's young generation grow to 64 MiB per semi-space on a large machine: under
 * tens of thousands of answers a second it does, and that memory stays resident (about 100 MiB
 * more RSS per process, measured in bench:edge's hot-16k) for no CPU saved. The flag only takes
 * effect at start, so the edge re-executes itself with it — the same process (execve), no
 * child. An operator's own --max-semi-space-size (command line or NODE_OPTIONS) is left alone.
 */
function tuneHeapForServing(): void {
  const set = (flags: readonly string[] | string | undefined) => [flags ?? []].flat().join(' ').includes('--max-semi-space-size');
  if (set(process.execArgv) || set(process.env.NODE_OPTIONS) || typeof process.execve !== 'function') return;
  process.execve(process.execPath, [process.execPath, `--max-semi-space-size=${EDGE_SEMI_SPACE_MB}`, ...process.execArgv, ...process.argv.slice(1)], process.env);
}

/** "127.0.0.1:8080" or "[::1]:8080" → host and port. */
export function hostPort(text: string, flag: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new UsageError(`${flag} wants HOST:PORT, got "${text}"`, steering);
  return { host: m[1]!, port };
}
