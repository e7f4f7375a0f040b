import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import type { CatalogSource } from './catalog.js';
import { resolvePlayerBundles } from './player-bundles.js';

/**
 * The demo player on steering's public port:
 *   GET /player/                    public/player/ (static page, script, style)
 *   GET /player/vendor/hls.min.js   hls.js, served by us (no CDN: the demo works offline)
 *   GET /player/vendor/dash.all.min.js   dash.js likewise
 *   GET /v1/titles                  the catalog's titles and their playable manifests (JSON)
 */

/** Where the package lives, from dist/src/steering/*.js or src/steering/*.ts alike. */
export const PACKAGE_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
})();

export const PLAYER_DIR = join(PACKAGE_ROOT, 'public', 'player');

/**
 * The player scripts (hls.js, dash.js), by the name the page asks for: from node_modules in a
 * checkout, from the build's copies in an installed package (player-bundles.ts). A Map, not an
 * object literal: a name from the URL such as `__proto__` or `constructor` must not find
 * Object.prototype's members.
 */
function vendorFiles(): Map<string, { dir: string; file: string }> {
  return resolvePlayerBundles(PACKAGE_ROOT);
}

/** One title as the player lists it. */
export interface PlayerTitle {
  title: string;
  kind: 'hls' | 'dash' | 'both';
  /** Its manifests, each playable at /v1/play/{title}/{manifest}. */
  manifests: { file: string; kind: 'hls' | 'dash' }[];
}

/** A title's playable manifests (the catalog lists only top-level ones: nothing references them). */
export function playableManifests(manifests: readonly string[]): PlayerTitle['manifests'] {
  const out: PlayerTitle['manifests'] = [];
  for (const f of manifests) {
    if (f.endsWith('.m3u8')) out.push({ file: f, kind: 'hls' });
    else if (f.endsWith('.mpd')) out.push({ file: f, kind: 'dash' });
  }
  return out;
}

/** A fastify plugin (register it on steering's public app). */
export async function playerRoutes(app: FastifyInstance, opts: { catalog: CatalogSource }): Promise<void> {
  const vendor = vendorFiles();
  await app.register(fastifyStatic, {
    root: PLAYER_DIR,
    prefix: '/player/',
    index: ['index.html'],
    cacheControl: true,
    maxAge: 0,
  });
  // The page's relative links (player.js, vendor/...) need the trailing slash.
  app.get('/player', async (_req, reply) => reply.redirect('/player/', 301));
  app.get('/player/vendor/:file', async (req, reply) => {
    const v = vendor.get((req.params as { file: string }).file);
    if (!v) return reply.code(404).type('text/plain; charset=utf-8').send('not found\n');
    return reply.sendFile(v.file, v.dir, { maxAge: '1h' });
  });
  app.get('/v1/titles', async (_req, reply) => {
    const view = opts.catalog.current() ?? (await opts.catalog.refreshAfterMiss());
    if (!view) return reply.code(503).header('retry-after', '5').type('text/plain; charset=utf-8').send('catalog unavailable\n');
    const titles: PlayerTitle[] = [...view.titles.values()]
      .map(({ entry }) => ({ title: entry.title, kind: entry.kind, manifests: playableManifests(entry.manifests) }))
      .filter((t) => t.manifests.length > 0)
      .sort((a, b) => a.title.localeCompare(b.title));
    return reply.header('cache-control', 'no-store').send({ titles });
  });
}
