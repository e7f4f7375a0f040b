import { mkdir } from 'node:fs/promises';
import type { CatalogSource } from './catalog-source.js';
import { loadCatalog } from './catalog.js';
import type { OriginContext } from './origin-context.js';
import { PlayStore } from './play-store.js';
import { ServedStore } from './served-store.js';
import { S3Storage } from './storage/s3-storage.js';

/** What start() reads before listening: the catalog, the play counts and the serve sums, into `ctx.state`. */
export async function openOriginData(ctx: OriginContext, catalog: CatalogSource, playFlushMs: number | undefined): Promise<void> {
  const { storage, clock, logger, state, boot } = ctx;
  // A fresh origin has no data folder yet; plays.json will be written into it.
  await mkdir(boot.origin.dataDir, { recursive: true });
  // A broken catalog at start is fatal (and clear); later ones only keep the old catalog.
  state.catalogStamp = await catalog.stampOf();
  state.catalog = await loadCatalog(storage);
  if (storage instanceof S3Storage && !(await storage.honoursConditionalWrites().catch(() => true))) {
    logger.warn({ storage: storage.location }, 'the store ignores conditional writes: run one ingest and one origin replica at a time (docs/operations.md, "Origin on S3")');
  }
  state.playStore = await PlayStore.open({
    storage,
    key: 'plays.json',
    clock,
    debounceMs: playFlushMs,
    logger,
  });
  state.servedStore = await ServedStore.open({
    storage,
    key: 'served.json',
    clock,
    sliceBytes: Math.min(...boot.edges.map((e) => e.sliceBytes), 64 * 1024 * 1024),
    logger,
  });
}
