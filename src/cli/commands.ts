import type { Command } from './command.js';
import { check } from './check.js';
import { demo } from './demo.js';
import { drain, undrain } from './drain.js';
import { explain } from './explain.js';
import { fill } from './fill.js';
import { ingest } from './ingest.js';
import { purge } from './purge.js';
import { reload } from './reload.js';
import { edge, origin, steering } from './roles.js';
import { status } from './status.js';

/**
 * Every `reelcdn` command, in the order the usage lists them. A new command: a module in this
 * folder exporting a `Command`, and one line here.
 */
export const COMMANDS: readonly Command[] = [demo, check, origin, steering, edge, ingest, fill, explain, reload, status, purge, drain, undrain];
