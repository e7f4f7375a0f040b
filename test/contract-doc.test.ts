import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, HTTPMethods } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPORT_PATH } from '../src/common/serve-report-wire.js';
import { OBJECT_PREFIX } from '../src/origin/object-route.js';
import { type OpsCluster, startOpsCluster } from './helpers/ops-cluster.js';

/**
 * docs/contract.md against the code: its route table against the routes the real services
 * register (both ways), its cluster-file table against the schema the roles validate with (every
 * field, every default), and no pointer out of the repository left in the README or docs/.
 */

const ROOT = join(import.meta.dirname, '..');
const doc = readFileSync(join(ROOT, 'docs', 'contract.md'), 'utf8');

/** The rows of the first table under the `## heading` (cells trimmed, header and rule left out). */
function tableUnder(heading: string, nth = 0): string[][] {
  const start = doc.indexOf(`\n## ${heading}\n`);
  expect(start, `docs/contract.md has "## ${heading}"`).toBeGreaterThanOrEqual(0);
  const end = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, end < 0 ? undefined : end);
  const tables: string[][] = [];
  let inTable = false;
  for (const line of section.split('\n')) {
    if (line.startsWith('|')) {
      if (!inTable) tables.push([]);
      tables.at(-1)!.push(line);
    }
    inTable = line.startsWith('|');
  }
  expect(tables[nth], `table ${nth} under "## ${heading}"`).toBeDefined();
  return tables[nth]!.slice(2).map((line) => line.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|')));
}
const unquote = (cell: string) => cell.replace(/^`|`$/g, '');

interface DocRoute {
  methods: HTTPMethods[];
  path: string;
  service: 'origin' | 'steering' | 'edge';
  port: 'public' | 'admin';
}
const routes: DocRoute[] = tableUnder('URLs').map(([methods, path, port]) => {
  const [service, which] = port!.split(' ') as [DocRoute['service'], DocRoute['port']];
  return { methods: methods!.split(/,\s*/) as HTTPMethods[], path: unquote(path!), service, port: which };
});

describe('docs/contract.md: the URLs', () => {
  let cluster: OpsCluster;
  beforeAll(async () => {
    cluster = await startOpsCluster();
  }, 60_000);
  afterAll(async () => cluster?.close());

  it('every route it lists is registered on that service and port', () => {
    const apps = (r: DocRoute): FastifyInstance => {
      const server = r.service === 'origin' ? cluster.origin : r.service === 'steering' ? cluster.steering : cluster.edges.values().next().value!;
      return r.port === 'public' ? server.publicApp : server.adminApp;
    };
    expect(routes.length).toBeGreaterThan(30);
    for (const r of routes) {
      // POST /reload is added by each role's main.ts (reload wiring), not by the server itself.
      if (r.path === '/reload') continue;
      for (const method of r.methods) expect(apps(r).hasRoute({ method, url: r.path }), `${method} ${r.path} on ${r.service} ${r.port}`).toBe(true);
    }
    const reload = readFileSync(join(ROOT, 'src', 'common', 'reload.ts'), 'utf8');
    expect(reload).toMatch(/adminApp\.post\('\/reload'/);
    for (const role of ['origin', 'steering', 'edge']) {
      expect(routes.some((r) => r.path === '/reload' && r.service === role && r.port === 'admin' && r.methods.includes('POST')), role).toBe(true);
      expect(readFileSync(join(ROOT, 'src', role, 'main.ts'), 'utf8'), `${role}/main.ts registers /reload`).toMatch(/registerReloadRoute\(/);
    }
  });

  it('every route the code registers is listed', () => {
    const registered: { method: string; path: string; where: string }[] = [];
    const walk = (dir: string) => {
      for (const f of readdirSync(dir)) {
        const p = join(dir, f);
        if (statSync(p).isDirectory()) {
          walk(p);
          continue;
        }
        if (!p.endsWith('.ts')) continue;
        const text = readFileSync(p, 'utf8');
        for (const m of text.matchAll(/\b(?:app|adminApp|publicApp)\.(get|post|head|options)\(\s*'(\/[^']*)'/g)) registered.push({ method: m[1]!.toUpperCase(), path: m[2]!, where: p });
        // Routes registered in a loop over [path, flag] pairs (drain / undrain).
        for (const m of text.matchAll(/of \[((?:\['\/[^']+', (?:true|false)\],? ?)+)\]\) as const\) \{\n\s*app\.(post|get)\(path/g)) {
          for (const pm of m[1]!.matchAll(/'(\/[^']+)'/g)) registered.push({ method: m[2]!.toUpperCase(), path: pm[1]!, where: p });
        }
        // Static folders (@fastify/static): GET prefix*.
        for (const m of text.matchAll(/fastifyStatic, \{[^}]*prefix: '(\/[^']*)'/g)) registered.push({ method: 'GET', path: `${m[1]!}*`, where: p });
        if (text.includes('app.post(REPORT_PATH')) registered.push({ method: 'POST', path: REPORT_PATH, where: p });
        if (text.includes('url: `${OBJECT_PREFIX}*`')) registered.push({ method: 'GET', path: `${OBJECT_PREFIX}*`, where: p });
      }
    };
    walk(join(ROOT, 'src'));
    expect(registered.length).toBeGreaterThan(30);
    for (const r of registered) {
      // A static sub-folder is covered by its parent folder's row (/dashboard/vendor/uplot/* by /dashboard/*).
      const listed = routes.some((d) => d.methods.includes(r.method as HTTPMethods) && (d.path === r.path || (d.path.endsWith('/*') && r.path.endsWith('/*') && r.path.startsWith(d.path.slice(0, -1)))));
      expect(listed, `${r.method} ${r.path} (${r.where.slice(ROOT.length + 1)}) is not in docs/contract.md "URLs"`).toBe(true);
    }
  });
});

describe('docs/contract.md: the cluster file', () => {
  const schema = JSON.parse(readFileSync(join(ROOT, 'schema', 'cluster.schema.json'), 'utf8')) as Record<string, any>;
  const defs = (schema.$defs ?? schema.definitions ?? {}) as Record<string, any>;
  const deref = (n: any): any => (n?.$ref ? defs[(n.$ref as string).split('/').pop()!] : n);
  /** Every field of the schema by path (`edges[].fill.window`), with its default; TLS blocks' fields apart. */
  const fields = new Map<string, unknown>();
  const tlsFields = new Set<string>();
  const walk = (node: any, prefix: string) => {
    const n = deref(node);
    if (!n) return;
    for (const [k, v0] of Object.entries((n.properties ?? {}) as Record<string, any>)) {
      const v = deref(v0);
      const path = `${prefix}${k}`;
      if (/\.(tls|adminTls)$/.test(prefix.slice(0, -1))) {
        tlsFields.add(k);
        continue;
      }
      fields.set(path, v.default);
      walk(v, `${path}.`);
    }
    if (n.items) walk(n.items, `${prefix.replace(/\.$/, '')}[].`);
    for (const x of [...(n.anyOf ?? []), ...(n.oneOf ?? [])]) walk(x, prefix);
  };
  walk(schema, '');

  it('lists every field of the schema, and no other, with the schema\'s default', () => {
    const rows = tableUnder('The cluster file', 0);
    const listed = new Map(rows.map(([path, , dflt]) => [unquote(path!), dflt!]));
    expect([...listed.keys()].sort()).toEqual([...fields.keys()].sort());
    for (const [path, dflt] of fields) expect(listed.get(path), `default of ${path}`).toBe(dflt === undefined ? '—' : JSON.stringify(dflt));
  });

  it('describes every field of a TLS block', () => {
    const rows = tableUnder('The cluster file', 1);
    expect(rows.map(([f]) => unquote(f!)).sort()).toEqual([...tlsFields].sort());
  });
});

describe('the repository is self-contained', () => {
  it('README and docs/ point nowhere outside the repository for the contract', () => {
    for (const f of ['README.md', ...readdirSync(join(ROOT, 'docs')).map((d) => join('docs', d))]) {
      const text = readFileSync(join(ROOT, f), 'utf8');
      expect(text, f).not.toMatch(/DESIGN\.md|\bshared\//);
    }
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toMatch(/docs\/contract\.md/);
  });
});
