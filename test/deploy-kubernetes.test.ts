import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import * as prometheusOperator from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import * as appsV1 from 'kubernetes-models/apps/v1';
import * as autoscalingV2 from 'kubernetes-models/autoscaling/v2';
import * as policyV1 from 'kubernetes-models/policy/v1';
import * as coreV1 from 'kubernetes-models/v1';
import { parseCommandLine } from '../src/cli/command.js';
import { COMMANDS } from '../src/cli/commands.js';
import { type ClusterConfig, validateCluster } from '../src/common/config.js';
import { checkCluster } from '../src/common/config-check.js';
import { TEST_ADMIN_TOKEN, tempDir } from './helpers/cluster.js';
import { type K8sObject, kustomize } from './helpers/kustomize.js';
import { type RoleProc, killAll, spawnRole, until } from './helpers/role-proc.js';

/**
 * deploy/kubernetes checked offline: every object against the Kubernetes API schemas, and
 * against the code — the cluster file in the ConfigMap, the ports the Services and probes name,
 * the command lines and environment the containers get — and then run: the roles started on
 * loopback addresses of their own (one per pod) with the manifests' own arguments, environment
 * and files, their probes asked, an edge's preStop run and its SIGTERM timed.
 */

const ROOT = join(import.meta.dirname, '..');
const K8S = join(ROOT, 'deploy', 'kubernetes');

/** Stand-ins for the secrets an operator makes (deploy/kubernetes/secrets/ is never committed). */
const SIGNING_SECRET = 'k8s-test-signing-secret-0123456789';
const SECRET_FILES = {
  'secrets/admin.env': `REELCDN_ADMIN_TOKEN=${TEST_ADMIN_TOKEN}\n`,
  'secrets/signing-keys.json': JSON.stringify({ k1: SIGNING_SECRET }),
};

const base = kustomize(K8S, SECRET_FILES);
const withMonitoring = kustomize(join(K8S, 'monitoring'), SECRET_FILES);

const all = (kind: string, objs = base) => objs.filter((o) => o.kind === kind);
function one(kind: string, name: string, objs = base): K8sObject {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in deploy/kubernetes`);
  return o;
}

/** Models by apiVersion: the class (validate()) and the module its TypeScript interface is in. */
const MODELS: Record<string, { classes: Record<string, unknown>; types: string }> = {
  v1: { classes: coreV1, types: 'kubernetes-models/v1' },
  'apps/v1': { classes: appsV1, types: 'kubernetes-models/apps/v1' },
  'policy/v1': { classes: policyV1, types: 'kubernetes-models/policy/v1' },
  'autoscaling/v2': { classes: autoscalingV2, types: 'kubernetes-models/autoscaling/v2' },
  'monitoring.coreos.com/v1': { classes: prometheusOperator, types: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1' },
};

// ---- the cluster file, as each pod reads it ----------------------------------------------

const configMap = one('ConfigMap', 'reelcdn-cluster');
const clusterRaw = JSON.parse(configMap.data['cluster.json'] as string) as Record<string, any>;

/** Validates a cluster file the way every role does at start, its keys file written where it says (mapped by `mapPath`). */
function loadCluster(raw: Record<string, any>, mapPath: (p: string) => string = (p) => p): ClusterConfig {
  const keysFile = mapPath(raw.signing.keysFile);
  mkdirSync(dirname(keysFile), { recursive: true });
  writeFileSync(keysFile, JSON.stringify({ k1: SIGNING_SECRET }), { mode: 0o600 });
  return validateCluster({ ...raw, signing: { ...raw.signing, keysFile } }, '/');
}

// ---- pods: what the workloads run ---------------------------------------------------------

interface Workload {
  owner: K8sObject;
  /** Pod names (a Deployment's are made up; a StatefulSet's are its name and ordinal). */
  pods: string[];
  labels: (pod: string) => Record<string, string>;
  spec: Record<string, any>;
  main: Record<string, any>;
}

function workloads(objs = base): Workload[] {
  return objs
    .filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')
    .map((owner) => {
      const spec = owner.spec.template.spec as Record<string, any>;
      const stateful = owner.kind === 'StatefulSet';
      const pods = Array.from({ length: owner.spec.replicas as number }, (_, i) => `${owner.metadata.name}-${stateful ? i : `pod${i}`}`);
      const labels = (pod: string) => ({ ...(owner.spec.template.metadata.labels as Record<string, string>), ...(stateful ? { 'statefulset.kubernetes.io/pod-name': pod } : {}) });
      expect(spec.containers, owner.metadata.name).toHaveLength(1);
      return { owner, pods, labels, spec, main: spec.containers[0] as Record<string, any> };
    });
}
const WORKLOADS = workloads();
const byComponent = (c: string) => WORKLOADS.filter((w) => w.owner.metadata.labels?.['app.kubernetes.io/component'] === c);
const edgeSets = byComponent('edge');

const selects = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);

/** A container's port by name or number. */
function containerPort(main: Record<string, any>, port: string | number): number {
  if (typeof port === 'number') return port;
  const p = (main.ports as { name: string; containerPort: number }[]).find((x) => x.name === port);
  if (!p) throw new Error(`container ${main.name} has no port named ${port}`);
  return p.containerPort;
}

/**
 * Where a URL of the cluster file lands: the pod and container port, through the Service the
 * host names — `svc`, `pod.headless-svc`, or a load balancer's public name (its reelcdn.io/url).
 */
function resolveUrl(url: string): { pod: string; workload: Workload; port: number } {
  const u = new URL(url);
  const port = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
  const services = all('Service');
  let svc = services.find((s) => s.metadata.name === u.hostname);
  let pod: string | undefined;
  if (!svc) {
    const [first, ...rest] = u.hostname.split('.');
    const headless = services.find((s) => s.spec.clusterIP === 'None' && s.metadata.name === rest.join('.'));
    if (headless) {
      svc = headless;
      pod = first;
    }
  }
  svc ??= services.find((s) => s.metadata.annotations?.['reelcdn.io/url'] !== undefined && new URL(s.metadata.annotations['reelcdn.io/url']).host === u.host);
  if (!svc) throw new Error(`${url}: no Service answers as ${u.hostname}`);
  const sp = (svc.spec.ports as { port: number; targetPort: string | number }[]).find((p) => p.port === port);
  if (!sp) throw new Error(`${url}: Service ${svc.metadata.name} has no port ${port}`);
  const matches = WORKLOADS.flatMap((w) => w.pods.filter((p) => selects(svc.spec.selector, w.labels(p))).map((p) => ({ pod: p, workload: w })));
  const hit = pod === undefined ? matches[0] : matches.find((m) => m.pod === pod);
  if (!hit) throw new Error(`${url}: Service ${svc.metadata.name} selects no pod${pod ? ` named ${pod}` : ''}`);
  return { ...hit, port: containerPort(hit.workload.main, sp.targetPort) };
}

/** `--listen` / `--admin-listen` of a container's command line. */
function listenFlag(main: Record<string, any>, flag: string): { host: string; port: number } {
  const args = main.args as string[];
  const v = args[args.indexOf(flag) + 1];
  const m = /^(.*):(\d+)$/.exec(v ?? '');
  if (args.indexOf(flag) < 0 || !m) throw new Error(`${main.name}: no ${flag} HOST:PORT`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** Bytes in a Kubernetes quantity (2Gi, 110Gi, 512Mi). */
function bytes(q: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|Ti)?$/.exec(q);
  if (!m) throw new Error(`quantity ${q}`);
  return Number(m[1]) * 1024 ** ['', 'Ki', 'Mi', 'Gi', 'Ti'].indexOf(m[2] ?? '');
}
/** CPUs in a Kubernetes quantity (2, 500m). */
const cpus = (q: string | number) => (typeof q === 'number' ? q : q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q));

/** The mount a path in a container falls under, if any. */
function mountOf(container: Record<string, any>, path: string): { name: string; mountPath: string; readOnly?: boolean } | undefined {
  return (container.volumeMounts as { name: string; mountPath: string; readOnly?: boolean }[] | undefined)
    ?.filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
}
const volume = (w: Workload, name: string) => (w.spec.volumes as Record<string, any>[]).find((v) => v.name === name)!;

describe('deploy/kubernetes: the objects', () => {
  it('renders as kustomize would, base and monitoring overlay, every object in the namespace', () => {
    expect(base.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      [
        'ConfigMap/reelcdn-cluster',
        'Deployment/reelcdn-origin',
        'Deployment/reelcdn-steering',
        'HorizontalPodAutoscaler/reelcdn-steering',
        'Namespace/reelcdn',
        'PersistentVolumeClaim/reelcdn-origin-data',
        'PodDisruptionBudget/reelcdn-edge-a',
        'PodDisruptionBudget/reelcdn-edge-b',
        'PodDisruptionBudget/reelcdn-steering',
        'Secret/reelcdn-admin',
        'Secret/reelcdn-signing-keys',
        'Service/reelcdn-edge',
        'Service/reelcdn-edge-a-0-public',
        'Service/reelcdn-edge-a-1-public',
        'Service/reelcdn-edge-b-0-public',
        'Service/reelcdn-origin',
        'Service/reelcdn-steering',
        'Service/reelcdn-steering-admin',
        'StatefulSet/reelcdn-edge-a',
        'StatefulSet/reelcdn-edge-b',
      ].sort(),
    );
    expect(withMonitoring.length).toBe(base.length + 2);
    for (const o of withMonitoring) if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('reelcdn');
    // The secrets an operator makes are never committed.
    expect(readFileSync(join(K8S, 'secrets', '.gitignore'), 'utf8')).toMatch(/^\*$/m);
    expect(readdirSync(join(K8S, 'secrets')).filter((f) => f !== '.gitignore' && !f.startsWith('.'))).toEqual([]);
  });

  it('validates against the Kubernetes API schemas (kubernetes-models, prometheus-operator CRDs)', () => {
    for (const o of withMonitoring) {
      const model = MODELS[o.apiVersion]?.classes[o.kind] as (new (d: unknown) => { validate(): void }) | undefined;
      expect(model, `${o.apiVersion} ${o.kind}`).toBeDefined();
      expect(() => new model!(o).validate(), `${o.kind}/${o.metadata.name}`).not.toThrow();
    }
  });

  it('has no field the API does not know (the API server refuses unknown fields): each object type-checks as its TypeScript model', () => {
    // The schemas above let unknown fields through; TypeScript's excess property checks do not.
    const dir = tempDir('reelcdn-k8s-types-');
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
    const lines = withMonitoring.map((o, i) => {
      const m = MODELS[o.apiVersion]!;
      return `import type { I${o.kind} as T${i} } from '${m.types}/${o.kind}';\nexport const o${i}: T${i} = ${JSON.stringify(o)};`;
    });
    writeFileSync(join(dir, 'manifests.ts'), `${lines.join('\n')}\n`);
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', types: [], skipLibCheck: true }, files: ['manifests.ts'] }));
    let out = '';
    try {
      execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { encoding: 'utf8' });
    } catch (err) {
      out = `${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}`;
    }
    // o12 → its object, for a readable failure.
    const named = out.replace(/manifests\.ts\((\d+),\d+\)/g, (_, line: string) => {
      const o = withMonitoring[Math.floor((Number(line) - 1) / 2)];
      return o ? `${o.kind}/${o.metadata.name}` : `line ${line}`;
    });
    expect(named).toBe('');
  });

  it('the image is the package version, pulled only when missing', () => {
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    for (const w of WORKLOADS) {
      for (const c of [...w.spec.containers, ...(w.spec.initContainers ?? [])]) expect(c.image, `${w.owner.metadata.name}/${c.name}`).toBe(`reelcdn:${version}`);
      expect(w.main.imagePullPolicy).toBe('IfNotPresent');
    }
  });

  it('runs under the restricted Pod Security Standard, without Service links in the environment', () => {
    for (const w of WORKLOADS) {
      const where = w.owner.metadata.name;
      expect(w.spec.securityContext.runAsNonRoot, where).toBe(true);
      expect(w.spec.securityContext.seccompProfile.type, where).toBe('RuntimeDefault');
      // The image's node user (deploy/Dockerfile: USER node).
      expect(w.spec.securityContext.runAsUser, where).toBe(1000);
      // Service links would add REELCDN_EDGE_PORT and the like: the code reads REELCDN_*.
      expect(w.spec.enableServiceLinks, where).toBe(false);
      for (const c of [...w.spec.containers, ...(w.spec.initContainers ?? [])]) {
        expect(c.securityContext, `${where}/${c.name}`).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
      }
      for (const v of w.spec.volumes as Record<string, unknown>[]) {
        expect(Object.keys(v).filter((k) => k !== 'name'), `${where} volume ${String(v.name)}`).toEqual([expect.stringMatching(/^(configMap|secret|emptyDir|persistentVolumeClaim)$/)]);
      }
    }
    expect(one('Namespace', 'reelcdn').metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
  });
});

describe('deploy/kubernetes: against the code', () => {
  it('the cluster file in the ConfigMap is valid for every role, and opens /health to the probes', () => {
    const keysRoot = tempDir('reelcdn-k8s-keys-');
    const cfg = loadCluster(clusterRaw, (p) => join(keysRoot, p));
    // What `reelcdn check` says of it: every schema and cross check, none only a role skips.
    expect(checkCluster({ ...clusterRaw, signing: { ...clusterRaw.signing, keysFile: join(keysRoot, clusterRaw.signing.keysFile) } }, '/').map((p) => p.message)).toEqual([]);
    // Probes carry no token.
    expect(cfg.admin.openHealth).toBe(true);
    // Mounted from the ConfigMap where the containers' --config points.
    for (const w of WORKLOADS) {
      const config = (w.main.args as string[])[(w.main.args as string[]).indexOf('--config') + 1]!;
      const m = mountOf(w.main, config)!;
      expect(volume(w, m.name).configMap?.name, w.owner.metadata.name).toBe('reelcdn-cluster');
      expect(configMap.data[config.slice(m.mountPath.length + 1)], config).toBeDefined();
    }
  });

  it('every container command line is one reelcdn takes (its parser, its commands), binding the ports the containers declare', () => {
    for (const w of WORKLOADS) {
      const [name, ...rest] = w.main.args as string[];
      const cmd = COMMANDS.find((c) => c.name === name);
      expect(cmd, `${w.owner.metadata.name}: reelcdn ${name}`).toBeDefined();
      expect(() => parseCommandLine(cmd!, rest, parseArgs), (w.main.args as string[]).join(' ')).not.toThrow();
      expect(w.main.command, 'the image ENTRYPOINT runs the CLI').toBeUndefined();
      // Bound on every address of the pod, on the ports named http and admin.
      expect(listenFlag(w.main, '--listen')).toEqual({ host: '0.0.0.0', port: containerPort(w.main, 'http') });
      expect(listenFlag(w.main, '--admin-listen')).toEqual({ host: '0.0.0.0', port: containerPort(w.main, 'admin') });
    }
    expect(byComponent('origin').map((w) => (w.main.args as string[])[0])).toEqual(['origin']);
    expect(byComponent('steering').map((w) => (w.main.args as string[])[0])).toEqual(['steering']);
    expect(edgeSets.map((w) => (w.main.args as string[])[0])).toEqual(['edge', 'edge']);
  });

  it('every URL of the cluster file reaches the right role and port through a Service', () => {
    const role = (url: string) => resolveUrl(url).workload.owner.metadata.labels?.['app.kubernetes.io/component'];
    const port = (url: string) => resolveUrl(url).port;
    const http = (w: Workload) => containerPort(w.main, 'http');
    const admin = (w: Workload) => containerPort(w.main, 'admin');
    const [origin] = byComponent('origin');
    const [steering] = byComponent('steering');
    expect([role(clusterRaw.origin.url), port(clusterRaw.origin.url)]).toEqual(['origin', http(origin!)]);
    expect([role(clusterRaw.origin.adminUrl), port(clusterRaw.origin.adminUrl)]).toEqual(['origin', admin(origin!)]);
    expect([role(clusterRaw.steering.url), port(clusterRaw.steering.url)]).toEqual(['steering', http(steering!)]);
    expect([role(clusterRaw.steering.adminUrl), port(clusterRaw.steering.adminUrl)]).toEqual(['steering', admin(steering!)]);
    for (const e of clusterRaw.edges as { id: string; url: string; adminUrl: string }[]) {
      // Players and steering reach the pod whose name is the edge's id.
      expect(resolveUrl(e.url).pod, e.url).toBe(e.id);
      expect(resolveUrl(e.adminUrl).pod, e.adminUrl).toBe(e.id);
      expect(port(e.url)).toBe(http(resolveUrl(e.url).workload));
      expect(port(e.adminUrl)).toBe(admin(resolveUrl(e.adminUrl).workload));
    }
    // Steering polls edges that are not ready (draining, starting): their names must resolve.
    expect(one('Service', 'reelcdn-edge').spec.publishNotReadyAddresses).toBe(true);
  });

  it('the edges of the cluster file are exactly the StatefulSets\' pods, each in its ISP, with room for its disk and memory tiers', () => {
    const edges = clusterRaw.edges as { id: string; isp: string; dataDir: string; diskBytes: number; memoryBytes: number; workers?: number }[];
    expect(edgeSets.flatMap((w) => w.pods).sort()).toEqual(edges.map((e) => e.id).sort());
    for (const e of edges) {
      const w = edgeSets.find((s) => s.pods.includes(e.id))!;
      expect(w.labels(e.id)['reelcdn.io/isp'], e.id).toBe(e.isp);
      expect(w.owner.spec.serviceName).toBe('reelcdn-edge');
      // The disk tier lives on the pod's own claim.
      const m = mountOf(w.main, e.dataDir)!;
      const claim = (w.owner.spec.volumeClaimTemplates as Record<string, any>[]).find((t) => t.metadata.name === m.name);
      expect(claim, `${e.id}: ${e.dataDir} is not on a volume claim`).toBeDefined();
      expect(bytes(claim!.spec.resources.requests.storage), `${e.id} claim vs diskBytes`).toBeGreaterThanOrEqual(e.diskBytes * 1.05);
      // The memory tier is shared out among the workers; each process has its own heap besides.
      const processes = (e.workers ?? 1) + (e.workers && e.workers > 1 ? 1 : 0);
      expect(bytes(w.main.resources.limits.memory), `${e.id} memory limit`).toBeGreaterThanOrEqual(e.memoryBytes + processes * 256 * 1024 * 1024);
      // One worker per CPU asked for (without edges[].workers the edge would start one per host CPU).
      expect(e.workers, `${e.id}: set edges[].workers`).toBeDefined();
      expect(cpus(w.main.resources.requests.cpu)).toBeGreaterThanOrEqual(e.workers!);
    }
    const [origin] = byComponent('origin');
    const m = mountOf(origin!.main, clusterRaw.origin.dataDir)!;
    expect(volume(origin!, m.name).persistentVolumeClaim?.claimName).toBe('reelcdn-origin-data');
    expect(origin!.owner.spec.strategy.type, 'never two origins on one catalog').toBe('Recreate');
  });

  it('the environment holds only variables the code reads: the edge id is the pod\'s name, the admin token is the Secret\'s', () => {
    const read = new Set<string>();
    const walk = (d: string) => {
      for (const f of readdirSync(d)) {
        const p = join(d, f);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith('.ts')) for (const m of readFileSync(p, 'utf8').matchAll(/\benv(?:\.|\[['"])([A-Z][A-Z0-9_]+)/g)) read.add(m[1]!);
      }
    };
    walk(join(ROOT, 'src'));
    expect(read).toContain('REELCDN_EDGE_ID');
    const adminSecret = one('Secret', 'reelcdn-admin');
    for (const w of WORKLOADS) {
      for (const e of (w.main.env ?? []) as { name: string }[]) expect(read, `${w.owner.metadata.name}: ${e.name}`).toContain(e.name);
      expect(w.main.envFrom).toEqual([{ secretRef: { name: 'reelcdn-admin' } }]);
    }
    for (const key of Object.keys(adminSecret.data)) expect(read, `Secret reelcdn-admin: ${key}`).toContain(key);
    expect(Object.keys(adminSecret.data)).toEqual(['REELCDN_ADMIN_TOKEN']);
    for (const w of edgeSets) expect(w.main.env).toEqual([{ name: 'REELCDN_EDGE_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }]);
  });

  it('probes ask the admin port; an edge is ready on /health (503 while draining) and alive while drained', () => {
    for (const w of WORKLOADS) {
      for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        const p = w.main[kind] as Record<string, any> | undefined;
        if (!p) continue;
        const action = p.httpGet ?? p.tcpSocket;
        expect(action?.port, `${w.owner.metadata.name} ${kind}`).toBe('admin');
      }
      expect(w.main.readinessProbe.httpGet.path, w.owner.metadata.name).toBe('/health');
    }
    // A node's /health waits up to STATS_TIMEOUT_MS for its workers' numbers (src/edge/cluster/node.ts).
    const statsMs = Number(/const STATS_TIMEOUT_MS = ([\d_]+)/.exec(readFileSync(join(ROOT, 'src', 'edge', 'cluster', 'node.ts'), 'utf8'))![1]!.replace(/_/g, ''));
    for (const w of edgeSets) {
      // An operator's drain keeps the process running: liveness must not be /health.
      expect(w.main.livenessProbe.httpGet).toBeUndefined();
      expect(w.main.livenessProbe.tcpSocket).toEqual({ port: 'admin' });
      // One slow or lost answer must not take a serving edge out of its Services: a few in a row.
      const ready = w.main.readinessProbe as { timeoutSeconds?: number; periodSeconds?: number; failureThreshold?: number };
      expect(ready.failureThreshold, w.owner.metadata.name).toBeGreaterThanOrEqual(2);
      expect(ready.failureThreshold, w.owner.metadata.name).toBeLessThanOrEqual(3);
      expect((ready.timeoutSeconds ?? 1) * 1000, `${w.owner.metadata.name}: a probe outlasts a node's /health`).toBeGreaterThan(statsMs);
      expect(ready.timeoutSeconds ?? 1, w.owner.metadata.name).toBeLessThanOrEqual(ready.periodSeconds ?? 10);
    }
  });

  it('an edge drains before it stops, and its grace period outlasts the drain, the players\' move and the SIGTERM drain', () => {
    const cfg = clusterRaw.steering as { healthIntervalMs: number; steeringTtlSeconds?: number };
    // drainOnSignal's own bound on a SIGTERM drain, from the code.
    const sigtermMs = Number(/export function drainOnSignal\([\s\S]*?graceMs = ([\d_]+)/.exec(readFileSync(join(ROOT, 'src', 'common', 'http-app.ts'), 'utf8'))![1]!.replace(/_/g, ''));
    // `reelcdn drain` waits at most this for steering to agree (src/cli/drain.ts).
    const drainWaitMs = cfg.healthIntervalMs * 2 + 5000;
    for (const w of edgeSets) {
      const script = (w.main.lifecycle.preStop.exec.command as string[]).join(' ');
      expect(script).toMatch(/cli\.js drain --config \/etc\/reelcdn\/cluster\.json --id "\$REELCDN_EDGE_ID"/);
      const sleep = Number(/sleep (\d+)/.exec(script)![1]);
      // Players re-poll steering within its TTL and move.
      expect(sleep).toBeGreaterThanOrEqual(cfg.steeringTtlSeconds ?? 10);
      expect(w.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(drainWaitMs + sleep * 1000 + sigtermMs);
    }
    for (const w of [...byComponent('origin'), ...byComponent('steering')]) expect(w.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(sigtermMs);
  });

  it('each ISP\'s edges and steering have a PodDisruptionBudget; steering scales on CPU behind a load balancer that keeps players\' addresses', () => {
    for (const w of edgeSets) {
      const pdb = all('PodDisruptionBudget').find((p) => selects(p.spec.selector.matchLabels, w.owner.spec.template.metadata.labels))!;
      expect(pdb, w.owner.metadata.name).toBeDefined();
      expect(pdb.spec.maxUnavailable).toBe(1);
      expect(selects(pdb.spec.selector.matchLabels, edgeSets.find((x) => x !== w)!.owner.spec.template.metadata.labels), 'one budget per ISP').toBe(false);
    }
    const [steering] = byComponent('steering');
    const lb = one('Service', 'reelcdn-steering');
    expect(lb.spec.type).toBe('LoadBalancer');
    expect(lb.spec.externalTrafficPolicy).toBe('Local');
    // steering.trustedProxies stays empty: the socket address is the player's.
    expect(clusterRaw.steering.trustedProxies).toEqual([]);
    const hpa = one('HorizontalPodAutoscaler', 'reelcdn-steering');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: steering!.owner.metadata.name });
    expect(hpa.spec.metrics[0].resource.name).toBe('cpu');
    expect(cpus(steering!.main.resources.requests.cpu), 'a CPU target needs a CPU request').toBeGreaterThan(0);
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(steering!.owner.spec.replicas);
    const pdb = one('PodDisruptionBudget', 'reelcdn-steering');
    expect(pdb.spec.minAvailable).toBeLessThan(hpa.spec.minReplicas);
    for (const s of all('Service').filter((x) => x.spec.type === 'LoadBalancer')) {
      expect((s.spec.ports as { name: string }[]).map((p) => p.name), `${s.metadata.name} opens only the public port`).toEqual(['http']);
    }
  });

  it('the signing keys reach every role as signing.keysFile wants them: a copy only the process can read', () => {
    const secret = one('Secret', 'reelcdn-signing-keys');
    expect(Object.keys(secret.data)).toEqual(['signing-keys.json']);
    for (const w of WORKLOADS) {
      const where = w.owner.metadata.name;
      const keysMount = mountOf(w.main, clusterRaw.signing.keysFile)!;
      expect(volume(w, keysMount.name).emptyDir?.medium, where).toBe('Memory');
      const sync = (w.spec.initContainers as Record<string, any>[]).find((c) => c.name === 'keys-sync')!;
      // A native sidecar: started first, kept running (it follows a changed Secret).
      expect(sync.restartPolicy, where).toBe('Always');
      expect(sync.startupProbe.exec.command).toEqual(['test', '-s', clusterRaw.signing.keysFile]);
      expect(mountOf(sync, clusterRaw.signing.keysFile)?.name).toBe(keysMount.name);
      const script = (sync.command as string[]).at(-1)!;
      const src = /src=(\S+)/.exec(script)![1]!;
      const srcMount = mountOf(sync, src)!;
      expect(volume(w, srcMount.name).secret).toMatchObject({ secretName: 'reelcdn-signing-keys' });
      // No bit for others: the fsGroup (the node user's group) reads it, no one else.
      expect(volume(w, srcMount.name).secret.defaultMode & 0o007, where).toBe(0);
      expect(src.slice(srcMount.mountPath.length + 1)).toBe('signing-keys.json');
      expect(/dst=(\S+)/.exec(script)![1], where).toBe(clusterRaw.signing.keysFile);
      // The main container never sees the Secret itself.
      expect(mountOf(w.main, src), where).toBeUndefined();
    }
    const sidecars = WORKLOADS.map((w) => JSON.stringify((w.spec.initContainers as Record<string, unknown>[]).find((c) => c.name === 'keys-sync')));
    expect(new Set(sidecars).size, 'the same sidecar everywhere').toBe(1);
  });
});

describe('deploy/kubernetes: monitoring', () => {
  const prometheus = parseYaml(readFileSync(join(ROOT, 'deploy', 'prometheus', 'prometheus.yml'), 'utf8')) as { scrape_configs: { job_name: string; static_configs: { labels?: Record<string, string> }[] }[] };
  const monitor = one('ServiceMonitor', 'reelcdn', withMonitoring);

  /** Prometheus' replace relabeling (the only action used), on a target's labels. */
  function relabel(labels: Record<string, string>, rules: { sourceLabels: string[]; regex?: string; targetLabel: string; replacement?: string; separator?: string }[]): Record<string, string> {
    const out = { ...labels };
    for (const r of rules) {
      const value = r.sourceLabels.map((l) => out[l] ?? '').join(r.separator ?? ';');
      const m = new RegExp(`^(?:${r.regex ?? '(.*)'})$`).exec(value);
      if (!m) continue;
      const v = (r.replacement ?? '$1').replace(/\$(\d+)/g, (_, i: string) => m[Number(i)] ?? '');
      if (v === '') delete out[r.targetLabel];
      else out[r.targetLabel] = v;
    }
    return out;
  }

  it('scrapes every admin port with the admin token, as the jobs deploy/prometheus names, edges labelled with their isp and edge', () => {
    const jobs = prometheus.scrape_configs.map((j) => j.job_name).sort();
    const scraped = all('Service', withMonitoring).filter((s) => s.metadata.labels?.[monitor.spec.jobLabel] !== undefined);
    expect(monitor.spec.selector.matchExpressions).toEqual([{ key: monitor.spec.jobLabel, operator: 'Exists' }]);
    expect(scraped.map((s) => s.metadata.labels![monitor.spec.jobLabel]).sort()).toEqual(jobs);
    const [endpoint] = monitor.spec.endpoints as Record<string, any>[];
    expect(endpoint!.path).toBe('/metrics');
    for (const s of scraped) expect((s.spec.ports as { name: string }[]).map((p) => p.name), s.metadata.name).toContain(endpoint!.port);
    // openMetrics is false: the token from the same Secret the roles read.
    expect(clusterRaw.admin.openMetrics).toBe(false);
    expect(endpoint!.authorization).toEqual({ type: 'Bearer', credentials: { name: 'reelcdn-admin', key: 'REELCDN_ADMIN_TOKEN' } });
    // The series' own `service` and `node` labels win over the operator's target labels.
    expect(endpoint!.honorLabels).toBe(true);
    // The target labels deploy/prometheus gives edges (isp, edge), from the pods.
    const edgeLabels = Object.keys(prometheus.scrape_configs.find((j) => j.job_name === 'reelcdn-edge')!.static_configs[0]!.labels ?? {}).sort();
    expect(edgeLabels).toEqual(['edge', 'isp']);
    for (const w of WORKLOADS) {
      for (const pod of w.pods) {
        const meta: Record<string, string> = { __meta_kubernetes_pod_name: pod };
        for (const [k, v] of Object.entries(w.labels(pod))) meta[`__meta_kubernetes_pod_label_${k.replace(/[^a-zA-Z0-9_]/g, '_')}`] = v;
        const got = relabel(meta, endpoint!.relabelings);
        const edge = (clusterRaw.edges as { id: string; isp: string }[]).find((e) => e.id === pod);
        expect({ isp: got.isp, edge: got.edge }, pod).toEqual(edge ? { isp: edge.isp, edge: edge.id } : { isp: undefined, edge: undefined });
      }
    }
  });

  it('the PrometheusRule is deploy/prometheus/reelcdn-rules.yml', () => {
    const rules = parseYaml(readFileSync(join(ROOT, 'deploy', 'prometheus', 'reelcdn-rules.yml'), 'utf8')) as { groups: unknown[] };
    expect(one('PrometheusRule', 'reelcdn', withMonitoring).spec.groups).toEqual(rules.groups);
  });
});

describe('deploy/kubernetes: run', () => {
  afterAll(() => killAll());

  it('starts each role as its pod would (arguments, environment, files), answers every probe, and an edge drains on preStop and stops within its grace period', async () => {
    const tmp = tempDir('reelcdn-k8s-run-');
    // Each pod its own loopback address, the manifests' ports on it: as pod IPs are.
    const podIps = new Map<string, string>();
    const ipOf = (pod: string) => {
      if (!podIps.has(pod)) podIps.set(pod, `127.77.0.${10 + podIps.size}`);
      return podIps.get(pod)!;
    };
    const [origin] = byComponent('origin');
    const [steering] = byComponent('steering');
    // One edge of each ISP (the other pods of a set run the same template).
    const running = [origin!, steering!, ...edgeSets].map((w) => ({ w, pod: w.pods[0]! }));
    for (const w of WORKLOADS) for (const p of w.pods) ipOf(p);

    // The image's and the volumes' paths, here.
    const mounts: [string, string][] = [
      ['/app/', `${ROOT}/`],
      ['/etc/reelcdn', join(tmp, 'etc-reelcdn')],
      ['/run/reelcdn/keys', join(tmp, 'keys')],
      ['/run/secrets/reelcdn', join(tmp, 'secret')],
      ['/var/lib/reelcdn', join(tmp, 'data')],
    ];
    const mapPath = (text: string) => mounts.reduce((t, [from, to]) => t.split(from).join(to), text);
    for (const w of WORKLOADS) {
      for (const c of [w.main, ...(w.spec.initContainers ?? [])]) {
        for (const m of (c.volumeMounts ?? []) as { mountPath: string }[]) {
          if (m.mountPath !== '/tmp') expect(mounts.map(([from]) => from), `${w.owner.metadata.name}/${c.name}: ${m.mountPath}`).toContain(m.mountPath);
        }
      }
    }

    // The cluster file as mounted from the ConfigMap, its URLs resolved as the pods' DNS would.
    const at = (url: string) => {
      const r = resolveUrl(url);
      return `http://${ipOf(r.pod)}:${r.port}`;
    };
    const cluster = structuredClone(clusterRaw);
    for (const s of [cluster.origin, cluster.steering, ...cluster.edges]) {
      s.url = at(s.url);
      s.adminUrl = at(s.adminUrl);
    }
    cluster.signing.keysFile = mapPath(cluster.signing.keysFile);
    for (const s of [cluster.origin, ...cluster.edges]) s.dataDir = mapPath(s.dataDir);
    mkdirSync(join(tmp, 'etc-reelcdn'));
    writeFileSync(join(tmp, 'etc-reelcdn', 'cluster.json'), JSON.stringify(cluster, null, 2));
    // The Secrets as their volumes and envFrom give them.
    const secretData = (name: string) => Object.fromEntries(Object.entries(one('Secret', name).data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
    mkdirSync(join(tmp, 'secret'));
    mkdirSync(join(tmp, 'keys'));
    const keysVolume = volume(origin!, 'signing-keys').secret as { defaultMode: number };
    writeFileSync(join(tmp, 'secret', 'signing-keys.json'), secretData('reelcdn-signing-keys')['signing-keys.json']!);
    chmodSync(join(tmp, 'secret', 'signing-keys.json'), keysVolume.defaultMode);
    const envOf = (w: Workload, pod: string): Record<string, string> => {
      const env: Record<string, string> = { ...secretData('reelcdn-admin') };
      for (const e of (w.main.env ?? []) as { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[]) {
        expect(e.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
        env[e.name] = pod;
      }
      return env;
    };

    // The keys-sync sidecar, its script as the pod runs it; the roles start after its startupProbe.
    const sync = (origin!.spec.initContainers as Record<string, any>[]).find((c) => c.name === 'keys-sync')!;
    const sidecar = spawn(sync.command[0], [...(sync.command as string[]).slice(1, -1), mapPath((sync.command as string[]).at(-1)!)], { stdio: 'ignore' });
    try {
      const [probe, ...probeArgs] = (sync.startupProbe.exec.command as string[]).map(mapPath);
      await until('the keys-sync startupProbe', async () => {
        execFileSync(probe!, probeArgs);
        return true;
      });
      expect(statSync(cluster.signing.keysFile).mode & 0o777, 'the copy the roles read').toBe(0o600);
      // A key added to the Secret later (a rotation) reaches the copy without a restart; the
      // sidecar looks every 10 s, checked at the end.
      const rotated = JSON.stringify({ k1: SIGNING_SECRET, k2: 'k8s-test-next-secret-0123456789' });
      writeFileSync(join(tmp, 'secret', 'signing-keys.json.new'), rotated, { mode: keysVolume.defaultMode });
      const later = new Date(Date.now() + 2000);
      utimesSync(join(tmp, 'secret', 'signing-keys.json.new'), later, later);
      renameSync(join(tmp, 'secret', 'signing-keys.json.new'), join(tmp, 'secret', 'signing-keys.json'));

      const procs = new Map<string, RoleProc>();
      const ready: Record<string, string> = { origin: 'origin listening', steering: 'steering listening', edge: 'edge listening' };
      for (const { w, pod } of running) {
        const args = (w.main.args as string[]).map((a) => mapPath(a).replace(/^0\.0\.0\.0:/, `${ipOf(pod)}:`));
        const { proc } = await spawnRole(args, { env: envOf(w, pod), readyMsg: ready[(w.main.args as string[])[0]!]!, timeoutMs: 30_000 });
        procs.set(pod, proc);
      }

      // Every probe, as the kubelet asks it: the pod's address, the container port, no token.
      for (const { w, pod } of running) {
        for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
          const p = w.main[kind] as Record<string, any> | undefined;
          if (!p) continue;
          const port = containerPort(w.main, (p.httpGet ?? p.tcpSocket).port);
          if (p.tcpSocket) {
            await new Promise<void>((resolve, reject) => {
              const s = connect(port, ipOf(pod), () => s.end(resolve));
              s.once('error', reject);
            });
          } else {
            const res = await request(`http://${ipOf(pod)}:${port}${p.httpGet.path}`);
            await res.body.dump();
            expect(res.statusCode, `${pod} ${kind} ${p.httpGet.path}`).toBe(200);
          }
        }
      }

      // Steering reaches the edges at their adminUrl and ranks them.
      const steeringAdmin = cluster.steering.adminUrl as string;
      const edgesView = async () => {
        const res = await request(`${steeringAdmin}/v1/edges`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
        return ((await res.body.json()) as { edges: { id: string; eligible: boolean; reason: string }[] }).edges;
      };
      const edgePods = running.filter((r) => r.w.main.args[0] === 'edge').map((r) => r.pod);
      await until('steering to take both edges', async () => ((await edgesView()).filter((e) => edgePods.includes(e.id) && e.eligible).length === edgePods.length ? true : undefined), 20_000);
      const player = await request(`${cluster.steering.url}/player/`);
      await player.body.dump();
      expect(player.statusCode).toBe(200);

      // preStop of the first edge, as the kubelet runs it in the container (sleep recorded, not slept).
      const [edgeSet] = edgeSets;
      const pod = edgeSet!.pods[0]!;
      const bin = join(tmp, 'bin');
      mkdirSync(bin);
      writeFileSync(join(bin, 'sleep'), `#!/bin/sh\necho "$@" >> ${join(tmp, 'slept')}\n`, { mode: 0o755 });
      const [sh, ...hook] = (edgeSet!.main.lifecycle.preStop.exec.command as string[]).map(mapPath);
      const started = Date.now();
      execFileSync(sh!, hook, { env: { ...process.env, ...envOf(edgeSet!, pod), PATH: `${bin}:${dirname(process.execPath)}:${process.env.PATH}` }, stdio: 'pipe', timeout: 30_000 });
      expect(readFileSync(join(tmp, 'slept'), 'utf8').trim()).toMatch(/^\d+$/);
      // Not ready (the PDB counts it out), steered away from, still serving.
      const health = await request(`http://${ipOf(pod)}:${containerPort(edgeSet!.main, 'admin')}${edgeSet!.main.readinessProbe.httpGet.path}`);
      expect((await health.body.json()) as { status: string }).toMatchObject({ status: 'draining' });
      expect(health.statusCode).toBe(503);
      expect((await edgesView()).find((e) => e.id === pod)).toMatchObject({ eligible: false, reason: 'draining' });

      // Then SIGTERM: out well within what is left of the grace period.
      const proc = procs.get(pod)!;
      const exited = new Promise<number | null>((resolve) => proc.child.once('exit', (code) => resolve(code)));
      proc.child.kill('SIGTERM');
      expect(await exited).toBe(0);
      const sleptMs = Number(readFileSync(join(tmp, 'slept'), 'utf8').trim()) * 1000;
      expect(Date.now() - started + sleptMs).toBeLessThan(edgeSet!.spec.terminationGracePeriodSeconds * 1000);

      await until('the rotated keys in the copy', async () => (readFileSync(cluster.signing.keysFile, 'utf8') === rotated ? true : undefined), 15_000);
      expect(statSync(cluster.signing.keysFile).mode & 0o777).toBe(0o600);
    } finally {
      sidecar.kill('SIGTERM');
    }
  }, 120_000);
});
