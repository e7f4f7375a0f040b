import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';

/**
 * The two player scripts the demo player page loads (public/player/index.html), by the name it
 * asks for (/player/vendor/NAME) and the npm file each is. They are all the page needs of the
 * hls.js and dashjs packages (about 160 MB installed), so the build copies just these files to
 * dist/vendor/ (`npm run build`, scripts/copy-player-bundles.mjs) and the packages are
 * devDependencies: the npm package and the Docker image carry the two files, not the packages.
 */
export const PLAYER_BUNDLES: readonly { name: string; from: string }[] = [
  { name: 'hls.min.js', from: 'hls.js/dist/hls.min.js' },
  // dashjs exports only ".": its "require" condition is the UMD bundle the page needs.
  { name: 'dash.all.min.js', from: 'dashjs' },
];

/** Where the build puts the copies, under the package root. */
export const BUNDLE_DIR = join('dist', 'vendor');

/**
 * Each bundle's folder and file name. The npm package when it is installed (a checkout, where it
 * is the newest), else the build's copy (an installed package, the image); undefined if neither.
 */
export function resolvePlayerBundles(packageRoot: string): Map<string, { dir: string; file: string }> {
  const require = createRequire(join(packageRoot, 'package.json'));
  const out = new Map<string, { dir: string; file: string }>();
  for (const b of PLAYER_BUNDLES) {
    let path: string | undefined;
    try {
      path = require.resolve(b.from);
    } catch {
      const copy = join(packageRoot, BUNDLE_DIR, b.name);
      if (existsSync(copy)) path = copy;
    }
    if (path !== undefined) out.set(b.name, { dir: dirname(path), file: basename(path) });
  }
  return out;
}

/** Copies the bundles from node_modules to `packageRoot/dist/vendor` (the build's last step). */
export function copyPlayerBundles(packageRoot: string): string[] {
  const require = createRequire(join(packageRoot, 'package.json'));
  const dir = join(packageRoot, BUNDLE_DIR);
  mkdirSync(dir, { recursive: true });
  return PLAYER_BUNDLES.map((b) => {
    const to = join(dir, b.name);
    copyFileSync(require.resolve(b.from), to);
    return to;
  });
}
