import type { DiskEvent, DiskSnapshot } from './replication.js';
import { type SliceLocation, type StoredMeta, sameRepresentation } from './types.js';

/** A slice in the index. `verified` is this process's own knowledge: it never travels. */
export interface IndexedSlice extends SliceLocation {
  /** Its CRC was checked by a read in this process since it was indexed here. */
  verified: boolean;
}

export interface IndexedObject {
  key: string;
  meta: StoredMeta;
  slices: Map<number, IndexedSlice>;
  /** Some of its slices are pinned: those below `pinBelow`. */
  pinned: boolean;
  /** Slices with an index below this are pinned: 0 none, Infinity all (a prefix fill pins only its range). */
  pinBelow: number;
}

export interface DiskIndexHooks {
  /** Every change, as the event a replica applies to follow. */
  changed?(e: DiskEvent): void;
  /** A slice left the index; `replacedBy` when another entry took its place at the same index. */
  removed?(slice: IndexedSlice, replacedBy?: IndexedSlice): void;
  /** A slice entered the index. */
  added?(slice: IndexedSlice): void;
}

/**
 * The disk tier's index (objects, their slices, pins, bytes, recency, write generations),
 * changed only through `apply`, one DiskEvent at a time. The owner's mutations build the event,
 * apply it and hand it on (`changed`); a replica applies the events it receives. Both folds of
 * the same events are the same index.
 */
export class DiskIndex {
  readonly objects = new Map<string, IndexedObject>();
  /** Unpinned slices by path, least recently used first (Map keeps insertion order). */
  readonly lru = new Map<string, { key: string; index: number }>();
  /** Pinned keys → slices pinned below this index (Infinity: the whole object). */
  private readonly pinnedKeys = new Map<string, number>();
  private readonly generations = new Map<string, number>();
  private bytes = 0;
  private pinned = 0;
  private sliceCount = 0;

  constructor(private readonly hooks: DiskIndexHooks = {}) {}

  get usedBytes(): number {
    return this.bytes;
  }
  get pinnedBytes(): number {
    return this.pinned;
  }
  get slices(): number {
    return this.sliceCount;
  }

  object(key: string): IndexedObject | undefined {
    return this.objects.get(key);
  }

  slice(key: string, index: number): IndexedSlice | undefined {
    return this.objects.get(key)?.slices.get(index);
  }

  isPinned(key: string): boolean {
    return this.pinnedKeys.has(key);
  }

  /** Slices of `key` pinned are those below this index: 0 none, Infinity all. */
  pinnedBelow(key: string): number {
    return this.pinnedKeys.get(key) ?? 0;
  }

  generation(key: string): number {
    return this.generations.get(key) ?? 0;
  }

  /** Marks a slice used now (least recently used goes first). */
  touch(path: string): void {
    const ref = this.lru.get(path);
    if (!ref) return;
    this.lru.delete(path);
    this.lru.set(path, ref);
  }

  // ---- changes: each is one event, applied then handed on ----

  put(key: string, index: number, meta: StoredMeta, slice: SliceLocation): IndexedSlice {
    this.emit({ type: 'put', key, index, meta, slice: { path: slice.path, dataOffset: slice.dataOffset, length: slice.length, crc32: slice.crc32, fileBytes: slice.fileBytes } });
    return this.slice(key, index)!;
  }
  dropSlice(key: string, index: number): void {
    if (this.slice(key, index)) this.emit({ type: 'slice-dropped', key, index });
  }
  dropObject(key: string): void {
    if (this.objects.has(key)) this.emit({ type: 'object-dropped', key });
  }
  setMeta(key: string, meta: StoredMeta): void {
    if (this.objects.has(key)) this.emit({ type: 'meta', key, meta });
  }
  /** Pins the object, or only its slices below `below` (a prefix). */
  pin(key: string, below = Infinity): void {
    if (!(below > 0)) return this.unpin(key);
    if (this.pinnedKeys.get(key) !== below) this.emit(below === Infinity ? { type: 'pinned', key } : { type: 'pinned', key, below });
  }
  unpin(key: string): void {
    if (this.pinnedKeys.has(key)) this.emit({ type: 'unpinned', key });
  }
  bumpGeneration(key: string): void {
    this.emit({ type: 'generation', key, generation: this.generation(key) + 1 });
  }

  private emit(e: DiskEvent): void {
    this.apply(e);
    this.hooks.changed?.(e);
  }

  /** Applies one change (or a whole snapshot, which replaces everything). */
  apply(e: DiskEvent | DiskSnapshot): void {
    switch (e.type) {
      case 'put': {
        let obj = this.objects.get(e.key);
        if (obj && !sameRepresentation(obj.meta, e.meta)) {
          this.removeObject(obj);
          obj = undefined;
        }
        obj ??= this.newObject(e.key, e.meta);
        obj.meta = e.meta;
        const slice: IndexedSlice = { ...e.slice, verified: false };
        const old = obj.slices.get(e.index);
        if (old) this.unaccount(obj, e.index, old);
        obj.slices.set(e.index, slice);
        this.account(obj, e.index, slice);
        if (old) this.hooks.removed?.(old, slice);
        this.hooks.added?.(slice);
        return;
      }
      case 'slice-dropped': {
        const obj = this.objects.get(e.key);
        const slice = obj?.slices.get(e.index);
        if (!obj || !slice) return;
        obj.slices.delete(e.index);
        this.unaccount(obj, e.index, slice);
        if (obj.slices.size === 0) this.objects.delete(obj.key);
        this.hooks.removed?.(slice);
        return;
      }
      case 'object-dropped': {
        const obj = this.objects.get(e.key);
        if (obj) this.removeObject(obj);
        return;
      }
      case 'meta': {
        const obj = this.objects.get(e.key);
        if (obj && sameRepresentation(obj.meta, e.meta)) obj.meta = e.meta;
        return;
      }
      case 'pinned': {
        const below = e.below ?? Infinity;
        this.pinnedKeys.set(e.key, below);
        const obj = this.objects.get(e.key);
        if (obj) this.setPinBelow(obj, below);
        return;
      }
      case 'unpinned': {
        this.pinnedKeys.delete(e.key);
        const obj = this.objects.get(e.key);
        if (obj) this.setPinBelow(obj, 0);
        return;
      }
      case 'generation':
        this.generations.set(e.key, e.generation);
        return;
      case 'snapshot': {
        for (const obj of [...this.objects.values()]) this.removeObject(obj);
        this.pinnedKeys.clear();
        this.generations.clear();
        for (const key of e.pinned) this.pinnedKeys.set(key, Infinity);
        for (const [key, below] of e.pinnedBelow ?? []) this.pinnedKeys.set(key, below);
        for (const [key, g] of e.generations) this.generations.set(key, g);
        for (const o of e.objects) {
          for (const { index, ...slice } of o.slices) this.apply({ type: 'put', key: o.key, index, meta: o.meta, slice });
        }
        return;
      }
    }
  }

  /** The whole index as one message: what a new replica applies first. */
  snapshot(): DiskSnapshot {
    return {
      type: 'snapshot',
      objects: [...this.objects.values()].map((o) => ({
        key: o.key,
        meta: o.meta,
        slices: [...o.slices].map(([index, s]) => ({ index, path: s.path, dataOffset: s.dataOffset, length: s.length, crc32: s.crc32, fileBytes: s.fileBytes })),
      })),
      pinned: [...this.pinnedKeys].filter(([, below]) => below === Infinity).map(([key]) => key),
      pinnedBelow: [...this.pinnedKeys].filter(([, below]) => below !== Infinity),
      generations: [...this.generations],
    };
  }

  private newObject(key: string, meta: StoredMeta): IndexedObject {
    const pinBelow = this.pinnedKeys.get(key) ?? 0;
    const obj: IndexedObject = { key, meta, slices: new Map(), pinned: pinBelow > 0, pinBelow };
    this.objects.set(key, obj);
    return obj;
  }

  private removeObject(obj: IndexedObject): void {
    this.objects.delete(obj.key);
    const slices = [...obj.slices.values()];
    for (const [index, s] of obj.slices) this.unaccount(obj, index, s);
    obj.slices.clear();
    for (const s of slices) this.hooks.removed?.(s);
  }

  private account(obj: IndexedObject, index: number, s: IndexedSlice): void {
    this.bytes += s.fileBytes;
    this.sliceCount++;
    if (index < obj.pinBelow) this.pinned += s.fileBytes;
    else this.lru.set(s.path, { key: obj.key, index });
  }

  private unaccount(obj: IndexedObject, index: number, s: IndexedSlice): void {
    this.bytes -= s.fileBytes;
    this.sliceCount--;
    if (index < obj.pinBelow) this.pinned -= s.fileBytes;
    else this.lru.delete(s.path);
  }

  /** Moves the slices whose pin changes between the LRU and the pinned bytes. */
  private setPinBelow(obj: IndexedObject, below: number): void {
    const was = obj.pinBelow;
    if (was === below) return;
    for (const [index, s] of obj.slices) {
      const before = index < was;
      const after = index < below;
      if (before === after) continue;
      if (after) {
        this.lru.delete(s.path);
        this.pinned += s.fileBytes;
      } else {
        this.pinned -= s.fileBytes;
        this.lru.set(s.path, { key: obj.key, index });
      }
    }
    obj.pinBelow = below;
    obj.pinned = below > 0;
  }
}
