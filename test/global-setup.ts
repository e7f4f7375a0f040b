import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');

function newest(dir: string): number {
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    t = Math.max(t, st.isDirectory() ? newest(p) : st.mtimeMs);
  }
  return t;
}

/**
 * Tests that start real `reelcdn` processes run dist/. `npm test` builds it first; a bare
 * `npx vitest` gets it built here, once, before any test runs — never in the middle of a run,
 * where a rebuild would pull files from under processes other tests started.
 */
export default function setup(): void {
  const cli = join(ROOT, 'dist', 'src', 'cli.js');
  if (existsSync(cli) && statSync(cli).mtimeMs >= newest(join(ROOT, 'src'))) return;
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', ROOT], { stdio: 'inherit' });
  } catch (err) {
    if (!existsSync(cli)) throw err; // tsc emits despite type errors; only a missing CLI stops the run
  }
}
