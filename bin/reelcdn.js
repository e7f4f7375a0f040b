#!/usr/bin/env node
// The CLI is compiled to dist/ by `npm run build` (npm start and npm test run it first).
import('../dist/src/cli.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('reelcdn: dist/ is missing — run `npm run build` first');
    process.exit(1);
  }
  throw err;
});
