import { type Command, CONFIG_OPTION, CliError, JSON_OPTION } from './command.js';
import { Unreachable, refusal, withAdminClient } from './admin-client.js';
import { formatStatusTable, statusRows, statusSummary } from './status-view.js';

export const status: Command = {
  name: 'status',
  synopsis: 'status   --config FILE [--json]',
  summary: 'one line per edge: state and reason, ISP, hit\nratio, throughput, disk, fill (from steering)',
  help: `Asks the running steering (GET /v1/edges on steering.adminUrl) how it sees every edge: its
state (up, suspect, down, unknown) and why, and the edge's last health report — hit ratio of
requests and bytes since it started, throughput, connections, disk used, fill state. An edge
whose last poll failed shows no numbers ("-"): its old ones would read as current.
Exit 1 if steering cannot be reached or refuses.

Options:
  --config FILE   the cluster file
  --json          the rows as JSON`,
  options: { ...CONFIG_OPTION, ...JSON_OPTION },
  admin: true,
  async run(args) {
    const config = args.config();
    const url = `${config.steering.adminUrl}/v1/edges`;
    const answer = await withAdminClient(config, async (c) => {
      try {
        return await c.call(url);
      } catch (err) {
        if (err instanceof Unreachable) throw new CliError(`steering's admin port ${config.steering.adminUrl} cannot be reached (${err.why}): status shows what the running steering sees`);
        throw err;
      }
    });
    if (answer.status !== 200) throw refusal('steering', answer);
    let rows;
    try {
      rows = statusRows(answer.json);
    } catch (err) {
      throw new CliError(`steering at ${config.steering.adminUrl}: ${(err as Error).message} (another version?)`);
    }
    if (args.values.json) {
      process.stdout.write(`${JSON.stringify({ steering: config.steering.adminUrl, edges: rows }, null, 2)}\n`);
      return;
    }
    process.stdout.write(formatStatusTable(rows) + statusSummary(rows));
  },
};
