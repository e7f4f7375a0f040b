import { CATALOG_FILE, loadCatalog } from './catalog.js';
import type { OriginContext } from './origin-context.js';

/** The origin's catalog, kept to what is stored: read at start, on a poll, and when a request names what it lacks. */
export interface CatalogSource {
  /** Identity of catalog.json as stored: inode, size and time on disk (a rename changes the inode), the ETag on S3. */
  stampOf(): Promise<string>;
  /** Re-reads catalog.json; a file that does not verify leaves the current catalog in place. */
  reload(): Promise<void>;
  /** A stat, and a reload only when the stored catalog is not the one loaded. */
  reloadIfChanged(): Promise<void>;
}

export function catalogSource(ctx: OriginContext): CatalogSource {
  const { storage, logger, state } = ctx;
  let reloading: Promise<void> | undefined;
  const stampOf = async (): Promise<string> => {
    try {
      return (await storage.stat(CATALOG_FILE))?.tag ?? 'absent';
    } catch {
      return 'absent';
    }
  };
  const reload = (): Promise<void> => {
    // One reload at a time; concurrent callers share it.
    reloading ??= (async () => {
      try {
        const stamp = await stampOf();
        const next = await loadCatalog(storage);
        state.catalog = next;
        state.catalogStamp = stamp;
        logger.info({ titles: next.size, bytes: next.bytes }, 'catalog loaded');
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'catalog not reloaded; serving the previous one');
      } finally {
        reloading = undefined;
      }
    })();
    return reloading;
  };
  return {
    stampOf,
    reload,
    reloadIfChanged: async () => {
      if ((await stampOf()) !== state.catalogStamp) await reload();
    },
  };
}
