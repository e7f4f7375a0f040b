import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type ClusterConfig, ConfigError, loadClusterFile } from '../common/config.js';
import { checkCluster, summary } from '../common/config-check.js';
import { loadServiceTls } from '../common/tls.js';
import { type Command, CONFIG_OPTION, JSON_OPTION } from './command.js';

export const check: Command = {
  name: 'check',
  synopsis: 'check    --config FILE [--json]',
  summary: 'check a cluster file: every problem, one line\neach (exit 0 "ok", 2 when there are problems)',
  help: `Checks the cluster file as every role does at start, and says every problem at once, one line
each naming the field (edges[1].diskBytes: must be a positive integer): the schema
(schema/cluster.schema.json: types, ranges, unknown keys such as a mistyped sliceByte), and what
a schema cannot say — a prefix two ISPs list, parents that are unknown, in another ISP or in a
cycle, a defaultIsp that is not an ISP, two services on one host:port, an ISP without edges,
fill windows that do not parse, https:// URLs without their tls block. Then it reads what the
file names, as the roles will: signing.keysFile and every certificate and key (readable, key
matching its certificate, valid now). Nothing is started and no port is asked.

Exit 0 and "ok: FILE: <summary>" when the file is good (warnings, if any, before it); 2 with the
problems when it is not.

Options:
  --config FILE   the cluster file
  --json          { "file", "ok", "problems": [{ "field", "problem" }], "warnings", "summary" }`,
  options: { ...CONFIG_OPTION, ...JSON_OPTION },
  async run(args) {
    const path = args.configPath();
    const report = checkFile(path, Date.now());
    process.stdout.write(args.values.json === true ? `${JSON.stringify(report, null, 2)}\n` : reportText(report));
    if (!report.ok) process.exitCode = 2;
  },
};

export interface CheckReport {
  file: string;
  ok: boolean;
  problems: { field: string; problem: string }[];
  warnings: string[];
  /** What a good file holds, in one line. */
  summary?: string;
}

/** Everything `reelcdn check` finds in the file at `path`, with certificates judged valid or not at `now`. */
export function checkFile(path: string, now: number): CheckReport {
  const file = resolve(path);
  let config: ClusterConfig | undefined;
  let problems: ConfigError[] = [];
  try {
    config = loadClusterFile(path);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // Unreadable or not JSON: that is all there is to say. Otherwise, every problem.
    problems = err.field === '(cluster file)' ? [err] : everyProblem(path, err);
  }
  if (config !== undefined) {
    // The findings roles leave to this command (CHECK_ONLY in config-check.ts).
    problems = checkCluster(JSON.parse(readFileSync(path, 'utf8')), config.baseDir);
    if (problems.length === 0) problems = certificateProblems(config, now);
  }
  const toLine = (p: ConfigError) => ({ field: p.field, problem: p.problem });
  if (problems.length > 0 || config === undefined) return { file, ok: false, problems: problems.map(toLine), warnings: [] };
  return { file, ok: true, problems: [], warnings: config.warnings ?? [], summary: summary(config) };
}

function everyProblem(path: string, first: ConfigError): ConfigError[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return [first]; // changed under us: what the load said stands
  }
  const all = checkCluster(raw, dirname(resolve(path)));
  return all.length > 0 ? all : [first];
}

/** Each service's certificates as its role loads them at start (first problem of each service). */
function certificateProblems(config: ClusterConfig, now: number): ConfigError[] {
  const services: [string, Parameters<typeof loadServiceTls>[0]][] = [
    ['origin', config.origin],
    ['steering', config.steering],
    ...config.edges.map((e, i): [string, ClusterConfig['edges'][number]] => [`edges[${i}]`, e]),
  ];
  const problems: ConfigError[] = [];
  for (const [field, service] of services) {
    try {
      loadServiceTls(service, field, now);
      // adminTls given for an http:// admin URL is not loaded by the role; neither is it here.
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(err);
    }
  }
  return problems;
}

export function reportText(r: CheckReport): string {
  const warnings = r.warnings.map((w) => `warning: ${w}\n`).join('');
  if (r.ok) return `${warnings}ok: ${r.file}: ${r.summary}\n`;
  const n = r.problems.length;
  return `${r.problems.map((p) => `${p.field}: ${p.problem}\n`).join('')}${r.file}: ${n} problem${n === 1 ? '' : 's'}\n`;
}
