import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';
import { ConfigError, findEdge, loadClusterFile, workerCount } from './common/config.js';
import { createLogger } from './common/logger.js';

const USAGE = `reelcdn — an Open Connect-style CDN for video

Usage:
  reelcdn demo [--dir DIR] [--base-port N] [--tls]    start a whole cluster on this machine
                                                      (--tls: every listener on HTTPS, certificates
                                                      from a throwaway CA in DIR/tls; prints the CA)
  reelcdn origin   --config FILE                      run the origin
  reelcdn steering --config FILE [--listen H:P] [--admin-listen H:P]
                                                      run steering (a replica may bind its own address)
  reelcdn edge     --config FILE --id EDGE_ID [--workers N]
                                                      run one edge node (N processes on its port;
                                                      default edges[].workers, else one per CPU)
  reelcdn ingest   --config FILE --title ID DIR       add an HLS/DASH folder to the origin catalog
  reelcdn fill     --config FILE --id EDGE_ID --now   run a node's fill outside its window
  reelcdn explain  --config FILE --ip ADDR --title T [--xff LIST] [--json]
                                                      why steering sends ADDR where it does for T
                                                      (asks the running steering's admin port)
  reelcdn reload   --config FILE (--role origin|steering|edge [--id EDGE_ID] | --all)
                                                      reload running processes (POST /reload) and
                                                      print each outcome; exits 1 if one refuses

Environment:
  REELCDN_ADMIN_TOKEN   bearer token of every admin port
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string' },
      id: { type: 'string' },
      title: { type: 'string' },
      dir: { type: 'string' },
      'base-port': { type: 'string' },
      tls: { type: 'boolean' },
      now: { type: 'boolean' },
      listen: { type: 'string' },
      'admin-listen': { type: 'string' },
      workers: { type: 'string' },
      ip: { type: 'string' },
      xff: { type: 'string' },
      json: { type: 'boolean' },
      role: { type: 'string' },
      all: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (!command || command === 'help' || command === '--help' || command === '-h' || values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const config = () => {
    if (!values.config) throw new UsageError(`${command} needs --config FILE`);
    const cfg = loadClusterFile(values.config);
    if (cfg.warnings?.length) {
      // Before the role starts, in the same JSON lines as the role's own log.
      const logger = createLogger(command, cfg.log.level, values.id);
      for (const warning of cfg.warnings) logger.warn(warning);
    }
    return cfg;
  };
  const edgeId = () => {
    if (!values.id) throw new UsageError(`${command} needs --id EDGE_ID`);
    return values.id;
  };

  switch (command) {
    case 'edge': {
      tuneHeapForServing();
      const cfg = config();
      const edge = findEdge(cfg, edgeId());
      const workers = values.workers === undefined ? (edge.workers ?? availableParallelism()) : workerCount(values.workers, '--workers', true);
      const { runEdge } = await import('./edge/main.js');
      await runEdge(cfg, edge, workers, values.config);
      return;
    }
    case 'origin': {
      const { runOrigin } = await import('./origin/main.js');
      await runOrigin(config(), values.config);
      return;
    }
    case 'steering': {
      const { runSteering } = await import('./steering/main.js');
      const listen = {
        ...(values.listen ? { public: hostPort(values.listen, '--listen') } : {}),
        ...(values['admin-listen'] ? { admin: hostPort(values['admin-listen'], '--admin-listen') } : {}),
      };
      await runSteering(config(), { listen }, values.config);
      return;
    }
    case 'ingest': {
      const cfg = config();
      if (!values.title) throw new UsageError('ingest needs --title ID');
      const dir = positionals[0];
      if (!dir) throw new UsageError('ingest needs the folder to add: reelcdn ingest --config FILE --title ID DIR');
      const { ingestTitle } = await import('./origin/ingest.js');
      const entry = await ingestTitle(cfg, values.title, dir);
      process.stdout.write(`ingested ${entry.title} (version ${entry.version}): ${entry.files.length} files, ${entry.bytes} bytes\n`);
      return;
    }
    case 'fill': {
      const cfg = config();
      const edge = findEdge(cfg, edgeId());
      if (!values.now) throw new UsageError('fill runs only with --now (the node fills inside its window by itself)');
      const { runFillNow } = await import('./edge/fill-cli.js');
      await runFillNow(cfg, edge);
      return;
    }
    case 'demo': {
      const { runDemo } = await import('./demo.js');
      let basePort: number | undefined;
      if (values['base-port'] !== undefined) {
        basePort = Number(values['base-port']);
        // The demo uses ports up to base + 602 (edge admin ports).
        if (!Number.isInteger(basePort) || basePort < 1 || basePort > 65535 - 700) throw new UsageError(`--base-port must be an integer from 1 to ${65535 - 700}`);
      }
      await runDemo({ dir: values.dir ?? 'demo-data', basePort, tls: values.tls ?? false });
      return;
    }
    case 'explain': {
      const cfg = config();
      if (!values.ip) throw new UsageError('explain needs --ip ADDRESS');
      if (!values.title) throw new UsageError('explain needs --title TITLE');
      const { runExplain } = await import('./steering/explain-cli.js');
      await runExplain(cfg, { ip: values.ip, title: values.title, xff: values.xff, json: values.json });
      return;
    }
    case 'reload': {
      const cfg = config();
      const { ReloadUsageError, reloadTargets, runReload } = await import('./common/reload-cli.js');
      let targets;
      try {
        targets = reloadTargets(cfg, { role: values.role, id: values.id, all: values.all });
      } catch (err) {
        throw err instanceof ReloadUsageError ? new UsageError(err.message) : err;
      }
      if (!(await runReload(cfg, targets))) process.exitCode = 1;
      return;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

class UsageError extends Error {}

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
function hostPort(text: string, flag: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new UsageError(`${flag} wants HOST:PORT, got "${text}"`);
  return { host: m[1]!, port };
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`reelcdn: config error: ${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`reelcdn: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  const code = (err as { code?: string }).code;
  if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL' || code === 'EACCES') {
    const e = err as { address?: string; port?: number };
    process.stderr.write(`reelcdn: cannot listen on ${e.address ?? '?'}:${e.port ?? '?'} (${code}) — is another process using it?\n`);
    process.exit(1);
  }
  if ((err as { userFacing?: boolean }).userFacing) {
    process.stderr.write(`reelcdn: ${(err as Error).message}\n`);
    process.exit(1);
  }
  process.stderr.write(`reelcdn: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
