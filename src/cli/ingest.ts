import { type Command, CONFIG_OPTION, UsageError } from './command.js';

export const ingest: Command = {
  name: 'ingest',
  synopsis: 'ingest   --config FILE --title ID DIR',
  summary: 'add an HLS/DASH folder to the origin catalog',
  help: `Copies DIR's manifests and media into the origin's storage as title ID (a new version
when ID exists) and updates the catalog; a running origin serves it at once.

Options:
  --config FILE   the cluster file (origin.dataDir is written, or the bucket origin.storage names)
  --title ID      the title's id`,
  options: { ...CONFIG_OPTION, title: { type: 'string' } },
  positionals: true,
  async run(args) {
    const cfg = args.config();
    const title = args.need('title', 'ID');
    const dir = args.positionals[0];
    if (!dir) throw new UsageError('ingest needs the folder to add: reelcdn ingest --config FILE --title ID DIR', ingest);
    if (args.positionals.length > 1) throw new UsageError(`ingest takes one folder, got ${args.positionals.length}`, ingest);
    const { ingestTitle } = await import('../origin/ingest.js');
    const entry = await ingestTitle(cfg, title, dir);
    process.stdout.write(`ingested ${entry.title} (version ${entry.version}): ${entry.files.length} files, ${entry.bytes} bytes\n`);
  },
};
