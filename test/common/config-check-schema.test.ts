import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { clusterSchema, clusterSchemaText } from '../../src/common/config-schema.js';
import { demoClusterFile } from '../../src/demo.js';

const ROOT = join(import.meta.dirname, '..', '..');
const PUBLISHED = join(ROOT, 'schema', 'cluster.schema.json');

type Node = Record<string, any>;

/** Every object schema with its place (`edges[].fill`), walking properties, items, maps and if/then/else. */
function objects(node: Node, at = '', out: [string, Node][] = []): [string, Node][] {
  if (node.type === 'object') out.push([at || '(root)', node]);
  for (const [k, v] of Object.entries<Node>(node.properties ?? {})) objects(v, at ? `${at}.${k}` : k, out);
  if (node.items) objects(node.items, `${at}[]`, out);
  if (node.additionalProperties && typeof node.additionalProperties === 'object') objects(node.additionalProperties, `${at}.*`, out);
  return out;
}

/**
 * The keys config.ts reads from the parsed file: `x.key` on every variable that holds a raw
 * object there (`const e = obj(v, f)`, `raw: Record<string, Json>`, the root). A key read but
 * missing from the schema would be refused as unknown; one in the schema but read nowhere is a
 * setting that does nothing.
 */
function keysTheCodeReads(): Set<string> {
  const src = readFileSync(join(ROOT, 'src', 'common', 'config.ts'), 'utf8');
  const keys = new Set<string>();
  for (const fn of src.matchAll(/^(?:export )?function \w+\([^)]*\)[^{]*\{/gm)) {
    const body = src.slice(fn.index, src.indexOf('\n}\n', fn.index));
    const raw = new Set<string>();
    for (const d of body.matchAll(/const (\w+) = (?:[\w.]+ === undefined \? \{\} : )?obj\(/g)) raw.add(d[1]!);
    for (const d of body.matchAll(/(\w+): Record<string, Json>/g)) raw.add(d[1]!);
    for (const v of raw) for (const a of body.matchAll(new RegExp(`\\b${v}\\.(\\w+)`, 'g'))) keys.add(a[1]!);
  }
  return keys;
}

describe('schema/cluster.schema.json', () => {
  it('isWhatTheCodeGenerates (npm run schema writes it)', () => {
    expect(readFileSync(PUBLISHED, 'utf8')).toBe(clusterSchemaText());
  });

  it('isAValidDraft07SchemaThatTakesTheDemoAndRefusesATypo', () => {
    const ajv = new Ajv({ allErrors: true, strict: true });
    ajv.addKeyword('errorMessage');
    ajv.addKeyword('patternErrorMessage');
    const validate = ajv.compile(JSON.parse(readFileSync(PUBLISHED, 'utf8')));
    for (const tls of [false, true]) {
      const demo = { $schema: './schema/cluster.schema.json', ...(demoClusterFile(7000, tls) as Node) };
      expect(validate(demo), JSON.stringify(validate.errors)).toBe(true);
    }
    const typo = demoClusterFile(7000) as Node;
    typo.edges[0].sliceByte = 65536;
    expect(validate(typo)).toBe(false);
    expect(validate.errors).toMatchObject([{ keyword: 'additionalProperties', instancePath: '/edges/0', params: { additionalProperty: 'sliceByte' } }]);
  });

  it('takesTheExampleClusterFileOfTheReadme', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const example = /## The cluster file[\s\S]*?```json\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(example).toBeDefined();
    const ajv = new Ajv({ allErrors: true, strict: true });
    ajv.addKeyword('errorMessage');
    ajv.addKeyword('patternErrorMessage');
    const validate = ajv.compile(clusterSchema());
    expect(validate(JSON.parse(example!)), JSON.stringify(validate.errors)).toBe(true);
  });

  it('refusesUnknownKeysInEveryObjectAndDescribesEveryField', () => {
    const schema = clusterSchema() as Node;
    for (const [at, node] of objects(schema)) {
      // Maps (signing.keys) describe their values instead; everything else lists its keys.
      if (at === 'signing.keys') expect(node.additionalProperties.type).toBe('string');
      else expect(node.additionalProperties, at).toBe(false);
      for (const [k, v] of Object.entries<Node>(node.properties ?? {})) expect(v.description, `${at}.${k}`).toMatch(/\w/);
    }
  });

  it('holdsExactlyTheKeysConfigTsReads', () => {
    const inSchema = new Set(objects(clusterSchema() as Node).flatMap(([, n]) => Object.keys(n.properties ?? {})));
    inSchema.delete('$schema'); // for editors: `"$schema": "./schema/cluster.schema.json"`
    const read = keysTheCodeReads();
    expect([...read].filter((k) => !inSchema.has(k)).sort(), 'read by config.ts, missing from the schema').toEqual([]);
    expect([...inSchema].filter((k) => !read.has(k)).sort(), 'in the schema, read by nothing').toEqual([]);
  });
});
