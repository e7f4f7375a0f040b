import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

/**
 * The part of kustomize deploy/kubernetes uses, done as kustomize does it, so tests can check
 * what `kubectl apply -k` would send without a kubectl: resources (files and directories with a
 * kustomization), the namespace, configMapGenerator and secretGenerator (files, envs),
 * generatorOptions.disableNameSuffixHash and images. A kustomization using anything else is
 * refused here rather than rendered wrong.
 *
 * YAML is read as kubectl reads it, YAML 1.1 (where 0440 is octal and yes is true).
 */

/** A Kubernetes object as plain data; the schemas (kubernetes-models) check its shape. */
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> } } & Record<string, any>;

const KUSTOMIZATION_KEYS = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'configMapGenerator', 'secretGenerator', 'generatorOptions', 'images']);
const GENERATOR_KEYS = new Set(['name', 'files', 'envs']);
/** Kinds without a namespace among those we use. */
const CLUSTER_SCOPED = new Set(['Namespace']);

export function parseYamlDocs(text: string, where: string): K8sObject[] {
  return parseAllDocuments(text, { version: '1.1' }).flatMap((d) => {
    if (d.errors.length > 0) throw new Error(`${where}: ${d.errors[0]!.message}`);
    const v = d.toJS() as K8sObject | null;
    return v === null ? [] : [v];
  });
}

/**
 * Renders the kustomization in `dir`. `missing` stands in for generator files that are not in
 * the repository (the secrets an operator makes), by their path as the kustomization names it.
 */
export function kustomize(dir: string, missing: Record<string, string> = {}): K8sObject[] {
  const k = parseYamlDocs(readFileSync(join(dir, 'kustomization.yaml'), 'utf8'), join(dir, 'kustomization.yaml'))[0] as Record<string, unknown>;
  for (const key of Object.keys(k)) if (!KUSTOMIZATION_KEYS.has(key)) throw new Error(`${dir}/kustomization.yaml: "${key}" is not rendered by this helper`);
  if (k.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || k.kind !== 'Kustomization') throw new Error(`${dir}/kustomization.yaml: not a kustomize.config.k8s.io/v1beta1 Kustomization`);
  const read = (rel: string): string => {
    const p = join(dir, rel);
    if (existsSync(p)) return readFileSync(p, 'utf8');
    if (rel in missing) return missing[rel]!;
    throw new Error(`${dir}/kustomization.yaml: ${rel} does not exist`);
  };

  const objects: K8sObject[] = [];
  for (const r of (k.resources as string[] | undefined) ?? []) {
    const p = resolve(dir, r);
    if (statSync(p).isDirectory()) objects.push(...kustomize(p, missing));
    else objects.push(...parseYamlDocs(readFileSync(p, 'utf8'), p));
  }

  const options = (k.generatorOptions ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(options)) if (key !== 'disableNameSuffixHash') throw new Error(`generatorOptions.${key} is not rendered by this helper`);
  // With a hash suffix, kustomize would also rename every reference: not done here.
  if (options.disableNameSuffixHash !== true && (k.configMapGenerator || k.secretGenerator)) throw new Error('generators need generatorOptions.disableNameSuffixHash: true here');
  const generated = (kind: 'ConfigMap' | 'Secret', g: Record<string, unknown>): K8sObject => {
    for (const key of Object.keys(g)) if (!GENERATOR_KEYS.has(key)) throw new Error(`${kind} generator ${String(g.name)}: "${key}" is not rendered by this helper`);
    const data: Record<string, string> = {};
    for (const f of (g.files as string[] | undefined) ?? []) {
      const [key, rel] = f.includes('=') ? (f.split('=', 2) as [string, string]) : [basename(f), f];
      data[key] = read(rel);
    }
    for (const rel of (g.envs as string[] | undefined) ?? []) {
      for (const line of read(rel).split('\n')) {
        const t = line.trim();
        if (t === '' || t.startsWith('#')) continue;
        const eq = t.indexOf('=');
        if (eq <= 0) throw new Error(`${rel}: "${t}" is not KEY=VALUE`);
        data[t.slice(0, eq)] = t.slice(eq + 1);
      }
    }
    const metadata = { name: g.name as string };
    if (kind === 'ConfigMap') return { apiVersion: 'v1', kind, metadata, data };
    return { apiVersion: 'v1', kind, metadata, type: 'Opaque', data: Object.fromEntries(Object.entries(data).map(([key, v]) => [key, Buffer.from(v).toString('base64')])) };
  };
  for (const g of (k.configMapGenerator as Record<string, unknown>[] | undefined) ?? []) objects.push(generated('ConfigMap', g));
  for (const g of (k.secretGenerator as Record<string, unknown>[] | undefined) ?? []) objects.push(generated('Secret', g));

  if (typeof k.namespace === 'string') {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }
  for (const img of (k.images as { name: string; newName?: string; newTag?: string }[] | undefined) ?? []) {
    for (const o of objects) {
      const spec = o.spec?.template?.spec;
      for (const c of [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])] as { image: string }[]) {
        const [name, tag] = c.image.split(':') as [string, string | undefined];
        if (name === img.name) c.image = `${img.newName ?? name}:${img.newTag ?? tag ?? 'latest'}`;
      }
    }
  }
  const seen = new Set<string>();
  for (const o of objects) {
    const id = `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    if (seen.has(id)) throw new Error(`${id} is defined twice`);
    seen.add(id);
  }
  return objects;
}
