/**
 * `npm run bench:chaos`: the chaos run of test/chaos.test.ts for longer (CHAOS_DURATION seconds
 * or `--duration S`, default 600; CHAOS_CLIENTS / `--clients N` players, default 6). Prints the
 * fault log as it goes and the figures at the end; exits 1 if a goal was missed (a wrong byte,
 * a failed request for content cached on a live edge, a process exit nobody asked for).
 */
import { parseArgs } from 'node:util';
import { runChaos } from './chaos-driver.js';

const { values } = parseArgs({ options: { duration: { type: 'string' }, clients: { type: 'string' }, seed: { type: 'string' } } });
const durationS = Number(values.duration ?? process.env.CHAOS_DURATION ?? 600);
const clients = Number(values.clients ?? process.env.CHAOS_CLIENTS ?? 6);
if (!(durationS > 0) || !Number.isInteger(clients) || clients < 1) {
  console.error('usage: bench:chaos [-- --duration SECONDS] [--clients N] [--seed N]');
  process.exit(2);
}
const report = await runChaos({ durationMs: durationS * 1000, clients, seed: Number(values.seed ?? 8), log: (l) => console.log(l) });
console.log(`\n${report.summary}`);
const missed = report.tally.wrongAnswers.length + report.tally.failedCached.length + report.unexpectedExits.length + report.driverErrors.length;
process.exit(missed === 0 ? 0 : 1);
