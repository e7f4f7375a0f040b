import type { ParseArgsConfig } from 'node:util';
import { type ClusterConfig, loadClusterFile } from '../common/config.js';
import { createLogger } from '../common/logger.js';

/**
 * One `reelcdn` command: its options, its help, and what it does. The dispatcher (src/cli.ts)
 * knows commands only through this shape and the table in ./commands.ts — a new command is a
 * module exporting one of these and one line in that table.
 */
export interface Command {
  name: string;
  /** The command line after `reelcdn `, as usage shows it (e.g. `origin --config FILE`). */
  synopsis: string;
  /** What it does, for the overall usage: one or two short lines (`\n` between). */
  summary: string;
  /** What `reelcdn <command> --help` says after the usage line: options, exit codes, examples. */
  help: string;
  /** Its options; `--help` is every command's. Strict: an option not listed is a usage error. */
  options: Options;
  /** Whether it takes arguments besides options (ingest's folder); default no. */
  positionals?: boolean;
  /** Talks to admin ports: the help mentions REELCDN_ADMIN_TOKEN. */
  admin?: boolean;
  run(args: CliArgs): Promise<void>;
}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** The parsed command line, and the cluster file it names, loaded on first ask. */
export interface CliArgs {
  command: string;
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  /** The cluster file of --config (a usage error without it), its warnings logged once. */
  config(): ClusterConfig;
  /** --config's path as given. */
  configPath(): string;
  /** A string option, or a usage error naming it and what it wants (`--id EDGE_ID`). */
  need(name: string, what: string): string;
}

/** A mistake in the command line: printed with the command's usage, exit 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose usage to print; default the whole usage. */
    readonly command?: Command,
  ) {
    super(message);
  }
}

/** A failure to print as one line, without a stack (exit 1). */
export class CliError extends Error {
  readonly userFacing = true;
}

/** `--config FILE`, the option every command that reads the cluster file takes. */
export const CONFIG_OPTION: Options = { config: { type: 'string' } };

/** The flag that makes a command print JSON instead of its table. */
export const JSON_OPTION: Options = { json: { type: 'boolean' } };

/** Parses `argv` for `cmd`; options not listed, or stray arguments, are usage errors. */
export function parseCommandLine(cmd: Command, argv: string[], parse: typeof import('node:util').parseArgs): CliArgs & { help: boolean } {
  let parsed;
  try {
    parsed = parse({
      args: argv,
      allowPositionals: cmd.positionals ?? false,
      strict: true,
      options: { ...cmd.options, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) throw new UsageError(`${cmd.name}: ${(err as Error).message}`, cmd);
    throw err;
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  let loaded: ClusterConfig | undefined;
  const need = (name: string, what: string): string => {
    const v = values[name];
    if (typeof v !== 'string' || v === '') throw new UsageError(`${cmd.name} needs --${name} ${what}`, cmd);
    return v;
  };
  return {
    command: cmd.name,
    values,
    positionals: parsed.positionals,
    help: values.help === true,
    need,
    configPath: () => need('config', 'FILE'),
    config() {
      if (loaded) return loaded;
      const file = need('config', 'FILE');
      loaded = loadClusterFile(file);
      if (loaded.warnings?.length) {
        // Before the role starts, in the same JSON lines as the role's own log.
        const logger = createLogger(cmd.name, loaded.log.level, typeof values.id === 'string' ? values.id : undefined);
        for (const warning of loaded.warnings) logger.warn(warning);
      }
      return loaded;
    },
  };
}

/** Column where the overall usage's descriptions start. */
const SUMMARY_COLUMN = 54;

/** The overall usage: every command's synopsis and summary, aligned. */
export function usageText(commands: readonly Command[]): string {
  const lines: string[] = [];
  for (const c of commands) {
    const head = `  reelcdn ${c.synopsis}`;
    const summary = c.summary.split('\n');
    if (head.length + 2 <= SUMMARY_COLUMN) {
      lines.push(head.padEnd(SUMMARY_COLUMN) + summary[0]);
      summary.shift();
    } else {
      lines.push(head);
    }
    for (const s of summary) lines.push(' '.repeat(SUMMARY_COLUMN) + s);
  }
  return `reelcdn — an Open Connect-style CDN for video

Usage:
${lines.join('\n')}
  reelcdn --version                                   print the version
  reelcdn COMMAND --help                              what COMMAND takes and does

Environment:
  REELCDN_ADMIN_TOKEN   bearer token of every admin port
`;
}

/** `reelcdn <command> --help`. */
export function commandHelp(c: Command): string {
  const env = c.admin ? '\nEnvironment:\n  REELCDN_ADMIN_TOKEN   bearer token of the admin ports it asks\n' : '';
  const summary = c.summary.replace(/\n/g, ' ');
  return `Usage: reelcdn ${c.synopsis.replace(/ {2,}/g, ' ')}\n\n${summary[0]!.toUpperCase()}${summary.slice(1)}.\n\n${c.help.trimEnd()}\n${env}`;
}
