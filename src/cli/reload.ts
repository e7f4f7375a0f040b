import { type Command, CONFIG_OPTION, UsageError } from './command.js';

export const reload: Command = {
  name: 'reload',
  synopsis: 'reload   --config FILE (--role origin|steering|edge [--id EDGE_ID] | --all)',
  summary: 'reload running processes (POST /reload) and\nprint each outcome; exits 1 if one refuses',
  help: `Asks running processes to take the cluster file again (POST /reload on their admin ports) and
prints what each applied. --all asks the edges first, then the origin, then steering, and stops
at the first refusal (naming those not asked). Exit 1 on a refusal or an unreachable process.

Options:
  --config FILE        the cluster file (its admin URLs; each process reads its own copy)
  --role ROLE          origin, steering or edge
  --id EDGE_ID         with --role edge: that edge only (default every edge)
  --all                every process of the cluster`,
  options: { ...CONFIG_OPTION, role: { type: 'string' }, id: { type: 'string' }, all: { type: 'boolean' } },
  admin: true,
  async run(args) {
    const cfg = args.config();
    const { ReloadUsageError, reloadTargets, runReload } = await import('../common/reload-cli.js');
    const { role, id, all } = args.values;
    let targets;
    try {
      targets = reloadTargets(cfg, { role: role as string | undefined, id: id as string | undefined, all: all as boolean | undefined });
    } catch (err) {
      throw err instanceof ReloadUsageError ? new UsageError(err.message, reload) : err;
    }
    if (!(await runReload(cfg, targets))) process.exitCode = 1;
  },
};
