import { parseArgs } from 'node:util';
import { type Command, UsageError, commandHelp, parseCommandLine, usageText } from './cli/command.js';
import { COMMANDS } from './cli/commands.js';
import { ConfigError } from './common/config.js';
import { VERSION } from './common/version.js';

/** The `reelcdn` command line: finds the command in the table (src/cli/commands.ts) and runs it. */

const USAGE = usageText(COMMANDS);
const byName = new Map(COMMANDS.map((c) => [c.name, c]));

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    // `reelcdn help purge` is `reelcdn purge --help`.
    const topic = name === 'help' && rest[0] !== undefined ? byName.get(rest[0]) : undefined;
    if (name === 'help' && rest[0] !== undefined && !topic) throw new UsageError(`unknown command "${rest[0]}"`);
    process.stdout.write(topic ? commandHelp(topic) : USAGE);
    return;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`reelcdn ${VERSION}\n`);
    return;
  }
  const cmd = byName.get(name);
  if (!cmd) throw new UsageError(`unknown command "${name}"`);
  const args = parseCommandLine(cmd, rest, parseArgs);
  if (args.help) {
    process.stdout.write(commandHelp(cmd));
    return;
  }
  await cmd.run(args);
}

function usageOf(cmd: Command | undefined): string {
  return cmd ? commandHelp(cmd) : USAGE;
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`reelcdn: config error: ${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof UsageError) {
    process.stderr.write(`reelcdn: ${err.message}\n\n${usageOf(err.command)}`);
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
