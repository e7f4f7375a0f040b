import { findEdge } from '../common/config.js';
import { type Command, CONFIG_OPTION, UsageError } from './command.js';

export const fill: Command = {
  name: 'fill',
  synopsis: 'fill     --config FILE --id EDGE_ID --now',
  summary: "run a node's fill outside its window",
  help: `Asks the running node to run a fill pass now (POST /fill on its admin port), prints a progress
line as files complete, then a summary. When the node is not running, fills its data folder
directly (the node picks it up at start). Exit 1 if any file failed.

Options:
  --config FILE    the cluster file
  --id EDGE_ID     the node to fill
  --now            required: the node fills inside its window by itself`,
  options: { ...CONFIG_OPTION, id: { type: 'string' }, now: { type: 'boolean' } },
  admin: true,
  async run(args) {
    const cfg = args.config();
    const edge = findEdge(cfg, args.need('id', 'EDGE_ID'));
    if (!args.values.now) throw new UsageError('fill runs only with --now (the node fills inside its window by itself)', fill);
    const { runFillNow } = await import('../edge/fill-cli.js');
    await runFillNow(cfg, edge);
  },
};
