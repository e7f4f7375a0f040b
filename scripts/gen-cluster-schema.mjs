#!/usr/bin/env node
// Writes schema/cluster.schema.json from the code (src/common/config-schema.ts); `npm run schema`.
// test/common/config-check-schema.test.ts fails while the committed file differs from what the code makes.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { clusterSchemaText } = await import(join(root, 'dist/src/common/config-schema.js'));
const out = join(root, 'schema/cluster.schema.json');
writeFileSync(out, clusterSchemaText());
process.stdout.write(`wrote ${out}\n`);
