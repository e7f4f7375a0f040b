import { type Command, UsageError } from './command.js';

export const demo: Command = {
  name: 'demo',
  synopsis: 'demo [--dir DIR] [--base-port N] [--tls]',
  summary: 'start a whole cluster on this machine\n(--tls: every listener on HTTPS, certificates\nfrom a throwaway CA in DIR/tls; prints the CA)',
  help: `Writes a cluster file to DIR, ingests the sample titles and runs an origin, steering and the
edges as child processes until Ctrl-C; prints the player, dashboard and admin URLs.

Options:
  --dir DIR         where the cluster file, data and logs go (default demo-data)
  --base-port N     first port of the block the demo listens on (default 7000)
  --tls             every listener on HTTPS, certificates from a throwaway CA in DIR/tls`,
  options: { dir: { type: 'string' }, 'base-port': { type: 'string' }, tls: { type: 'boolean' } },
  async run(args) {
    const { runDemo } = await import('../demo.js');
    const { values } = args;
    let basePort: number | undefined;
    if (values['base-port'] !== undefined) {
      basePort = Number(values['base-port']);
      // The demo uses ports up to base + 602 (edge admin ports).
      if (!Number.isInteger(basePort) || basePort < 1 || basePort > 65535 - 700) throw new UsageError(`--base-port must be an integer from 1 to ${65535 - 700}`, demo);
    }
    await runDemo({ dir: typeof values.dir === 'string' ? values.dir : 'demo-data', basePort, tls: values.tls === true });
  },
};
