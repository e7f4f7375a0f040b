import { type Command, CONFIG_OPTION, JSON_OPTION } from './command.js';

export const explain: Command = {
  name: 'explain',
  synopsis: 'explain  --config FILE --ip ADDR --title T [--xff LIST] [--json]',
  summary: 'why steering sends ADDR where it does for T\n(asks the running steering\'s admin port)',
  help: `Asks the running steering (GET /v1/explain on steering.adminUrl) how it ranks the edges for a
client at ADDR playing T: its ISP, each edge's health, load and ring position. Exit 1 if
steering cannot be reached or refuses.

Options:
  --config FILE   the cluster file
  --ip ADDR       the client's address
  --title T       the title
  --xff LIST      an X-Forwarded-For header, as a proxy in steering.trustedProxies would send it
  --json          steering's answer as JSON`,
  options: { ...CONFIG_OPTION, ...JSON_OPTION, ip: { type: 'string' }, title: { type: 'string' }, xff: { type: 'string' } },
  admin: true,
  async run(args) {
    const cfg = args.config();
    const ip = args.need('ip', 'ADDRESS');
    const title = args.need('title', 'TITLE');
    const { runExplain } = await import('../steering/explain-cli.js');
    const xff = args.values.xff;
    await runExplain(cfg, { ip, title, xff: typeof xff === 'string' ? xff : undefined, json: args.values.json === true });
  },
};
