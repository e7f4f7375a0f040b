import { type Command, CONFIG_OPTION, CliError, JSON_OPTION, UsageError } from './command.js';
import { Unreachable, refusal, withAdminClient } from './admin-client.js';
import { formatBytes } from '../common/format-bytes.js';

/** Steering asks each edge up to four times (about 4 s of waits, 10 s per request): room for that. */
const PURGE_TIMEOUT_MS = 90_000;

interface PurgeAnswer {
  what: string;
  complete: boolean;
  edges: { id: string; isp: string; ok: boolean; attempts: number; purged?: number; bytes?: number; error?: string }[];
}

export const purge: Command = {
  name: 'purge',
  synopsis: 'purge    --config FILE (--title T [--file F | --prefix P] | --prefix P) [--json]',
  summary: 'remove a title, a file or a prefix from every\nedge (through steering); exits 1 if one could not',
  help: `Asks the running steering (POST /v1/purge on steering.adminUrl) to purge on every edge of the
cluster file, memory and disk; the next request for what was purged is a MISS. Steering asks an
edge that cannot be reached (or answers 5xx) again after 0.5, 1 and 2 s — four attempts — and
reports every edge's outcome. Parents are purged before their children (a child whose parent
could not be purged is not asked: it would refill from the parent's copy). Exit 1 if any edge could not be purged (it still holds the
objects: purge again once it is back, or before it is).

  --title T                every file of title T
  --title T --file F       one file
  --title T --prefix P     T's files whose path starts with P (e.g. video/1080p/)
  --prefix P               every title whose id starts with P (e.g. show-s01)

Options:
  --config FILE   the cluster file
  --json          steering's answer as JSON`,
  options: { ...CONFIG_OPTION, ...JSON_OPTION, title: { type: 'string' }, file: { type: 'string' }, prefix: { type: 'string' } },
  admin: true,
  async run(args) {
    const config = args.config();
    const { title, file, prefix } = args.values as { title?: string; file?: string; prefix?: string };
    if (title === undefined && prefix === undefined) throw new UsageError('purge needs --title T or --prefix P', purge);
    if (file !== undefined && prefix !== undefined) throw new UsageError('purge takes --file or --prefix, not both', purge);
    if (file !== undefined && title === undefined) throw new UsageError('--file needs --title T', purge);
    for (const [k, v] of Object.entries({ title, file, prefix })) if (v === '') throw new UsageError(`--${k} must not be empty`, purge);
    const body = { ...(title !== undefined ? { title } : {}), ...(file !== undefined ? { file } : {}), ...(prefix !== undefined ? { prefix } : {}) };
    const st = config.steering.adminUrl;
    const answer = await withAdminClient(config, async (c) => {
      try {
        return await c.call(`${st}/v1/purge`, { body, timeoutMs: PURGE_TIMEOUT_MS });
      } catch (err) {
        if (err instanceof Unreachable) throw new CliError(`steering's admin port ${st} cannot be reached (${err.why}): nothing was purged`);
        throw err;
      }
    });
    if ((answer.status !== 200 && answer.status !== 502) || !Array.isArray((answer.json as PurgeAnswer | undefined)?.edges)) throw refusal('steering', answer);
    const a = answer.json as PurgeAnswer;
    if (args.values.json) process.stdout.write(`${JSON.stringify(a, null, 2)}\n`);
    else {
      const out = [`purge of ${a.what} on ${a.edges.length} edges (through ${st}):`];
      const w = Math.max(...a.edges.map((e) => e.id.length));
      for (const e of a.edges) {
        const tries = e.attempts > 1 ? ` (after ${e.attempts} attempts)` : '';
        out.push(e.ok ? `  ${e.id.padEnd(w)}  purged ${e.purged ?? 0} objects, ${formatBytes(e.bytes ?? 0)}${tries}` : `  ${e.id.padEnd(w)}  NOT purged${tries}: ${e.error}`);
      }
      const ok = a.edges.filter((e) => e.ok).length;
      out.push(a.complete ? `purged on all ${a.edges.length} edges` : `purged on ${ok} of ${a.edges.length} edges; not on ${a.edges.filter((e) => !e.ok).map((e) => e.id).join(', ')}`);
      process.stdout.write(`${out.join('\n')}\n`);
    }
    if (!a.complete) process.exitCode = 1;
  },
};
