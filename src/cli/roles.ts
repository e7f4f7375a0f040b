import { availableParallelism, hostname } from 'node:os';
import { workerCount } from '../common/config.js';
import { type CliArgs, type Command, CONFIG_OPTION, type Options, UsageError } from './command.js';
import { chooseEdgeId, findEdgeBy } from './edge-id.js';

/** The three long-running roles: origin, steering, edge. */

/**
 * `--listen H:P` and `--admin-listen H:P`: where a role binds when that is not its URLs' host
 * and port — a steering replica behind a load balancer, or any role in a pod, whose URLs name a
 * Service while the process binds 0.0.0.0.
 */
const LISTEN_OPTIONS: Options = { listen: { type: 'string' }, 'admin-listen': { type: 'string' } };

function listenOverrides(args: CliArgs, cmd: Command): { public?: { host: string; port: number }; admin?: { host: string; port: number } } {
  const { values } = args;
  return {
    ...(typeof values.listen === 'string' ? { public: hostPort(values.listen, '--listen', cmd) } : {}),
    ...(typeof values['admin-listen'] === 'string' ? { admin: hostPort(values['admin-listen'], '--admin-listen', cmd) } : {}),
  };
}

export const origin: Command = {
  name: 'origin',
  synopsis: 'origin   --config FILE [--listen H:P] [--admin-listen H:P]',
  summary: 'run the origin',
  help: `Serves the catalog, the titles' files (/o/, signed) and the fill manifests, until SIGTERM.
SIGHUP (or \`reelcdn reload --role origin\`) reloads the cluster file.

Options:
  --config FILE          the cluster file
  --listen H:P           bind the public port here instead of origin.url's (a pod: 0.0.0.0:PORT)
  --admin-listen H:P     bind the admin port here instead of origin.adminUrl's`,
  options: { ...CONFIG_OPTION, ...LISTEN_OPTIONS },
  async run(args) {
    const { runOrigin } = await import('../origin/main.js');
    const listen = listenOverrides(args, origin);
    await runOrigin(args.config(), args.configPath(), listen);
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
  options: { ...CONFIG_OPTION, ...LISTEN_OPTIONS },
  async run(args) {
    const { runSteering } = await import('../steering/main.js');
    const listen = listenOverrides(args, steering);
    await runSteering(args.config(), { listen }, args.configPath());
  },
};

export const edge: Command = {
  name: 'edge',
  synopsis: 'edge     --config FILE (--id EDGE_ID | --id-from-hostname) [--workers N] [--listen H:P] [--admin-listen H:P]',
  summary: 'run one edge node (N processes on its port;\ndefault edges[].workers, else one per CPU)',
  help: `Serves /c/ from memory and disk, fills in its window and answers its admin port, until
SIGTERM drains it. SIGHUP (or \`reelcdn reload --role edge --id EDGE_ID\`) reloads the cluster file.

Options:
  --config FILE          the cluster file
  --id EDGE_ID           which of the file's edges this is
  --id-from-hostname     the edge whose id is this machine's hostname (its first label): a pod of
                         a StatefulSet is named reelcdn-edge-a-0, reelcdn-edge-a-1, …
  --workers N            serving processes sharing the public port (default edges[].workers, else
                         one per CPU)
  --listen H:P           bind the public port here instead of its url's (a pod: 0.0.0.0:PORT)
  --admin-listen H:P     bind the admin port here instead of its adminUrl's

Environment:
  REELCDN_EDGE_ID        the edge id when neither --id nor --id-from-hostname is given`,
  options: { ...CONFIG_OPTION, id: { type: 'string' }, 'id-from-hostname': { type: 'boolean' }, workers: { type: 'string' }, ...LISTEN_OPTIONS },
  async run(args) {
    const which = chooseEdgeId(args.values, process.env, hostname());
    if (!which.ok) throw new UsageError(`edge ${which.problem}`, edge);
    const listen = listenOverrides(args, edge);
    tuneHeapForServing();
    const cfg = args.config();
    const e = findEdgeBy(cfg, which.id, which.source);
    const w = args.values.workers;
    const workers = w === undefined ? (e.workers ?? availableParallelism()) : workerCount(w, '--workers', true);
    const { runEdge } = await import('../edge/main.js');
    await runEdge(cfg, e, workers, args.configPath(), listen);
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
export function hostPort(text: string, flag: string, cmd: Command = steering): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new UsageError(`${flag} wants HOST:PORT, got "${text}"`, cmd);
  return { host: m[1]!, port };
}
