import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { demoClusterFile } from '../src/demo.js';
import { type OpsCluster, startOpsCluster } from './helpers/ops-cluster.js';
import { metricNames, parsePrometheusText } from './helpers/prom-parse.js';

const ROOT = join(import.meta.dirname, '..');
const DEPLOY = join(ROOT, 'deploy');

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: { expr: string; refId: string }[];
}

const prometheus = parseYaml(readFileSync(join(DEPLOY, 'prometheus', 'prometheus.yml'), 'utf8')) as {
  rule_files: string[];
  scrape_configs: { job_name: string; authorization?: { type: string; credentials_file: string }; static_configs: { targets: string[]; labels?: Record<string, string> }[] }[];
};
const rules = parseYaml(readFileSync(join(DEPLOY, 'prometheus', 'reelcdn-rules.yml'), 'utf8')) as {
  groups: { name: string; rules: { record?: string; alert?: string; expr: string }[] }[];
};
const grafana = JSON.parse(readFileSync(join(DEPLOY, 'grafana', 'reelcdn-dashboard.json'), 'utf8')) as { uid: string; title: string; panels: Panel[] };

const panelExprs = grafana.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `grafana panel "${p.title}"`, expr: t.expr })));
const ruleExprs = rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.record ?? r.alert}`, expr: r.expr })));
const recorded = new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.record ? [r.record] : []))));

/** Metric names a PromQL expression uses (ours: reelcdn_*, and recording rules' level:metric:op names). */
function namesIn(expr: string): string[] {
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return [...noStrings.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0]).filter((n) => n.startsWith('reelcdn_') || n.includes(':reelcdn_'));
}

/** Label names used in by (...) / without (...) / ignoring (...) / on (...) clauses. */
function groupingLabels(expr: string): string[] {
  return [...expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()).filter(Boolean));
}

let cluster: OpsCluster;
const exposed = new Set<string>();
const labels = new Set<string>(['le', 'job', 'instance']);

beforeAll(async () => {
  cluster = await startOpsCluster();
  const admins = [cluster.config.origin.adminUrl, cluster.config.steering.adminUrl, ...cluster.config.edges.map((e) => e.adminUrl)];
  for (const url of admins) {
    const res = await request(`${url}/metrics`, { headers: { authorization: `Bearer ${cluster.token}` } });
    const e = parsePrometheusText(await res.body.text());
    for (const n of metricNames(e)) exposed.add(n);
    for (const s of e.samples) for (const l of Object.keys(s.labels)) labels.add(l);
  }
  // Labels a counter only shows once incremented (fill sources, origin byte classes): as declared in the metrics modules.
  for (const f of ['src/edge/edge-metrics.ts', 'src/steering/metrics.ts', 'src/origin/metrics.ts']) {
    for (const m of readFileSync(join(ROOT, f), 'utf8').matchAll(/labelNames: \[([^\]]*)\]/g)) {
      for (const l of m[1]!.matchAll(/'([a-z_]+)'/g)) labels.add(l[1]!);
    }
  }
  // Target labels the scrape config adds.
  for (const j of prometheus.scrape_configs) for (const sc of j.static_configs) for (const l of Object.keys(sc.labels ?? {})) labels.add(l);
}, 60_000);
afterAll(async () => cluster?.close());

describe('deploy/prometheus', () => {
  it('scrapes the origin, steering and every edge admin port of the demo cluster with a bearer credentials file', () => {
    const demo = demoClusterFile(7000) as { origin: { adminUrl: string }; steering: { adminUrl: string }; edges: { id: string; isp: string; adminUrl: string }[] };
    const hostPort = (u: string) => new URL(u).host;
    const job = (name: string) => prometheus.scrape_configs.find((j) => j.job_name === name)!;
    for (const name of ['reelcdn-origin', 'reelcdn-steering', 'reelcdn-edge']) {
      expect(job(name), name).toBeDefined();
      expect(job(name).authorization).toEqual({ type: 'Bearer', credentials_file: expect.stringMatching(/^\//) });
    }
    expect(job('reelcdn-origin').static_configs.flatMap((s) => s.targets)).toEqual([hostPort(demo.origin.adminUrl)]);
    expect(job('reelcdn-steering').static_configs.flatMap((s) => s.targets)).toEqual([hostPort(demo.steering.adminUrl)]);
    const edges = job('reelcdn-edge').static_configs.map((s) => ({ target: s.targets[0], isp: s.labels?.isp, edge: s.labels?.edge }));
    expect(edges).toEqual(demo.edges.map((e) => ({ target: hostPort(e.adminUrl), isp: e.isp, edge: e.id })));
    expect(prometheus.rule_files).toEqual(['reelcdn-rules.yml']);
  });

  it('rules use only metrics the services expose', () => {
    for (const { where, expr } of ruleExprs) {
      for (const n of namesIn(expr)) expect(exposed.has(n) || recorded.has(n), `${where}: ${n}`).toBe(true);
      for (const l of groupingLabels(expr)) expect(labels.has(l), `${where}: label ${l}`).toBe(true);
    }
  });
});

describe('deploy/grafana', () => {
  it('is a dashboard with the promised panels, on a datasource variable', () => {
    expect(grafana.uid).toBe('reelcdn-ops');
    const ids = grafana.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const titles = grafana.panels.map((p) => p.title);
    for (const want of ['Hit ratio by edge (requests)', 'Hit ratio by edge (bytes)', 'Hit ratio by ISP (bytes)', 'Bytes served by edge and tier', 'Origin egress', "Edge state (steering's view)", 'Fill progress (bytes)']) {
      expect(titles).toContain(want);
    }
    for (const p of grafana.panels.filter((x) => x.type !== 'row')) {
      expect(p.datasource?.uid, p.title).toBe('${datasource}');
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
    }
  });

  it('uses only metric names and labels the services expose', () => {
    expect(panelExprs.length).toBeGreaterThan(10);
    for (const { where, expr } of panelExprs) {
      const names = namesIn(expr);
      expect(names.length, `${where}: ${expr}`).toBeGreaterThan(0);
      for (const n of names) expect(exposed.has(n), `${where}: ${n} is not in any /metrics`).toBe(true);
      for (const l of groupingLabels(expr)) expect(labels.has(l), `${where}: label ${l}`).toBe(true);
    }
  });
});

describe('deploy/systemd and deploy/Dockerfile', () => {
  it('systemd units run the built CLI with the cluster file', () => {
    const edge = readFileSync(join(DEPLOY, 'systemd', 'reelcdn-edge@.service'), 'utf8');
    expect(edge).toMatch(/^ExecStart=\/usr\/bin\/node \/opt\/reelcdn\/dist\/src\/cli\.js edge --config \S+ --id %i$/m);
    expect(edge).toMatch(/^EnvironmentFile=/m);
    expect(readFileSync(join(DEPLOY, 'systemd', 'reelcdn-origin.service'), 'utf8')).toMatch(/cli\.js origin --config /);
    expect(readFileSync(join(DEPLOY, 'systemd', 'reelcdn-steering.service'), 'utf8')).toMatch(/cli\.js steering --config /);
  });

  it('systemctl reload sends SIGHUP to the main process of every unit (each role reloads on it)', () => {
    for (const unit of ['reelcdn-origin.service', 'reelcdn-steering.service', 'reelcdn-edge@.service']) {
      expect(readFileSync(join(DEPLOY, 'systemd', unit), 'utf8'), unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    }
  });

  it('the Dockerfile copies only paths that exist (it cannot be built here: no Docker engine)', () => {
    const text = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
    const sources = [...text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    expect(sources.length).toBeGreaterThan(3);
    for (const s of sources) expect(existsSync(join(ROOT, s)), s).toBe(true);
    expect(text).toMatch(/ENTRYPOINT \["node", "\/app\/dist\/src\/cli\.js"\]/);
  });

  it('the Dockerfile\'s context (its .dockerignore) keeps every path the Dockerfile copies', () => {
    const text = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
    const sources = [...text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    // .dockerignore: later lines win, `!` keeps; patterns as used there (a path, `dir/*`, `*.ext`).
    const rules = readFileSync(join(DEPLOY, 'Dockerfile.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => ({ keep: l.startsWith('!'), re: new RegExp(`^${l.replace(/^!/, '').replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/.*)?$`) }));
    const excluded = (path: string) => rules.reduce((ex, r) => (r.re.test(path) ? !r.keep : ex), false);
    for (const s of sources) expect(excluded(s), s).toBe(false);
    expect(excluded('node_modules')).toBe(true);
    expect(excluded('test/edge-smoke.test.ts')).toBe(true);
  });

  it('the image carries the two player bundles, not the hls.js and dashjs packages: devDependencies pruned after the build copied the bundles', () => {
    const text = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; dependencies: Record<string, string>; devDependencies: Record<string, string> };
    for (const dev of ['hls.js', 'dashjs', 'autocannon']) {
      expect(Object.keys(pkg.dependencies), dev).not.toContain(dev);
      expect(Object.keys(pkg.devDependencies), dev).toContain(dev);
    }
    expect(pkg.scripts.build).toMatch(/copy-player-bundles\.mjs/);
    expect(text).toMatch(/^RUN npm run build && npm prune --omit=dev/m);
    const fromBuild = [...text.matchAll(/^COPY --from=build (\S+) \S+$/gm)].map((m) => m[1]);
    expect(fromBuild).toEqual(['/app/package.json', '/app/node_modules', '/app/dist/src', '/app/dist/vendor']);
  });
});
