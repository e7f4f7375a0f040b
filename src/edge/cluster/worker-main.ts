/** Entry of an edge node's worker processes (forked by the primary, never run by hand). */
import { runWorker } from './worker.js';

runWorker().catch((err: unknown) => {
  process.stderr.write(`reelcdn edge worker ${process.env.REELCDN_WORKER_INDEX ?? '?'}: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
