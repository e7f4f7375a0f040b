/**
 * The fill planner's thread (node:worker_threads): runs plan jobs (fill-plan-job.ts) off the
 * origin's event loop, so a plan of seconds never holds up an `/o/` answer. It keeps the catalog
 * and the standing plan between jobs (the origin sends them only when they change) and the
 * catalog's shapes; one job at a time, in the order sent. Started by fill-plan-runner.ts.
 */
import { parentPort } from 'node:worker_threads';
import { type CatalogSource, type PlanGround, type PlanJob, type StandingSource, newPlanCaches, runPlanJob } from './fill-plan-job.js';
import { type PlannerReply, type PlannerRequest, cpuMsSince } from './fill-plan-runner.js';

if (!parentPort) throw new Error('fill-plan-worker runs as a worker thread');
const port = parentPort;
const ground: { catalog: CatalogSource; standing?: StandingSource } = { catalog: [] };
const caches = newPlanCaches();

port.on('message', (msg: PlannerRequest) => {
  let reply: PlannerReply;
  try {
    // The caches follow the catalog by identity (and shapes by each title's files): kept.
    if (msg.catalog) ground.catalog = msg.catalog;
    if (msg.standing !== undefined) ground.standing = msg.standing ?? undefined;
    const job: PlanJob = msg.job;
    const at = performance.now();
    const cpu = process.threadCpuUsage();
    const outcome = runPlanJob(job, ground as PlanGround, caches);
    reply = { id: msg.id, ok: true, outcome, ms: performance.now() - at, cpuMs: cpuMsSince(cpu) };
  } catch (err) {
    reply = { id: msg.id, ok: false, error: (err as Error).stack ?? String(err) };
  }
  port.postMessage(reply);
});
