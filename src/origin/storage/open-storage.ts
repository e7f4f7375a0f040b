import type { OriginConfig } from '../../common/config.js';
import { DirStorage } from './dir-storage.js';
import { S3Storage } from './s3-storage.js';
import type { OriginStorage } from './storage.js';

/** One storage per validated origin config: an S3 client keeps its connections between calls. */
const opened = new WeakMap<OriginConfig, OriginStorage>();

/** The storage `origin.storage` names: the folder `origin.dataDir` unless it says `kind: "s3"`. */
export function originStorage(origin: OriginConfig): OriginStorage {
  let s = opened.get(origin);
  if (!s) {
    s = origin.storage?.kind === 's3' ? new S3Storage(origin.storage) : new DirStorage(origin.dataDir);
    opened.set(origin, s);
  }
  return s;
}

/** A storage, or a data folder by its path (what callers passed before there was a choice). */
export function asStorage(where: string | OriginStorage): OriginStorage {
  return typeof where === 'string' ? new DirStorage(where) : where;
}
