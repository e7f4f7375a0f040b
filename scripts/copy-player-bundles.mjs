// The build's last step (npm run build): the two player scripts the player page loads, copied
// from node_modules to dist/vendor/ (src/steering/player-bundles.ts says why).
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyPlayerBundles } from '../dist/src/steering/player-bundles.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
for (const file of copyPlayerBundles(root)) console.log(`player bundle: ${relative(root, file)}`);
