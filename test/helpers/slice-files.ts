import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The slice files of `key` under an edge's data directory, found by their headers (file names
 * hash the representation, so tests look them up rather than recompute them).
 */
export function findSliceFiles(dataDir: string, key: string, area: 'cache' | 'staging' = 'cache'): { index: number; path: string }[] {
  const root = join(dataDir, area);
  const dirs = area === 'cache' ? safeReaddir(root).map((d) => join(root, d)) : [root];
  const found: { index: number; path: string }[] = [];
  for (const dir of dirs) {
    for (const name of safeReaddir(dir)) {
      if (name.startsWith('.tmp-')) continue;
      const path = join(dir, name);
      try {
        const f = readFileSync(path);
        const len = f.readUInt32BE(6);
        const header = JSON.parse(f.subarray(10, 10 + len).toString()) as { key: string; index: number };
        if (header.key === key) found.push({ index: header.index, path });
      } catch {
        // not a slice file
      }
    }
  }
  return found.sort((a, b) => a.index - b.index);
}

/** The path of slice `index` of `key`; throws if there is none. */
export function sliceFile(dataDir: string, key: string, index: number): string {
  const f = findSliceFiles(dataDir, key).find((s) => s.index === index);
  if (!f) throw new Error(`no slice file for ${key}#${index} under ${dataDir}`);
  return f.path;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
