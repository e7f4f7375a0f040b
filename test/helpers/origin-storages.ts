import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll } from 'vitest';
import type { ClusterConfig } from '../../src/common/config.js';
import { type TestS3, startTestS3 } from './s3-server.js';

/** The origin's storages: every test parametrized with these runs on a local folder and on a real S3 API server. */
export type StorageKind = 'dir' | 's3';
export const STORAGE_KINDS: StorageKind[] = ['dir', 's3'];

/** What is stored, read without the origin's own storage code: the folder through node:fs, the bucket through a plain S3 client. */
export interface StoredView {
  /** Names directly under a folder key ('titles/movie/'), sorted; [] if none. */
  list(prefix: string): Promise<string[]>;
  /** An object's bytes, or undefined. */
  read(key: string): Promise<Buffer | undefined>;
  exists(key: string): Promise<boolean>;
  /** Removes one object (a file the catalog lists, to see the origin cope). */
  remove(key: string): Promise<void>;
  /** Puts an object there behind the origin's back (a stray file, a broken catalog). */
  write(key: string, data: string | Buffer): Promise<void>;
}

export interface StorageFixture {
  kind: StorageKind;
  /** `config` moved onto this storage: for S3, a fresh key prefix of the shared test bucket. */
  on(config: ClusterConfig): ClusterConfig;
  view(config: ClusterConfig): StoredView;
  /** The S3 server (kind "s3" only), with the requests it saw. */
  s3(): TestS3;
}

/**
 * Registers the hooks a storage kind needs in the enclosing describe (an S3 server for the
 * file's tests on "s3") and returns what the tests use to put configs on it.
 */
export function useStorage(kind: StorageKind): StorageFixture {
  let server: TestS3 | undefined;
  if (kind === 's3') {
    beforeAll(async () => {
      server = await startTestS3();
    });
    afterAll(async () => {
      await server?.close();
    });
  }
  const s3 = () => {
    if (!server) throw new Error('no S3 server: kind is dir, or beforeAll has not run');
    return server;
  };
  return {
    kind,
    s3,
    on(config) {
      if (kind === 'dir') return config;
      const srv = s3();
      return {
        ...config,
        origin: {
          ...config.origin,
          storage: { kind: 's3', endpoint: srv.endpoint, bucket: srv.bucket, region: 'us-east-1', prefix: `t-${randomBytes(6).toString('hex')}/`, forcePathStyle: true },
        },
      };
    },
    view(config) {
      const st = config.origin.storage;
      return st?.kind === 's3' ? s3View(st.endpoint!, st.bucket, st.prefix) : dirView(config.origin.dataDir);
    },
  };
}

function dirView(dir: string): StoredView {
  const path = (key: string) => join(dir, ...key.split('/').filter(Boolean));
  return {
    async list(prefix) {
      try {
        return readdirSync(path(prefix)).sort();
      } catch {
        return [];
      }
    },
    async read(key) {
      return existsSync(path(key)) ? readFileSync(path(key)) : undefined;
    },
    async exists(key) {
      return existsSync(path(key));
    },
    async remove(key) {
      rmSync(path(key), { force: true });
    },
    async write(key, data) {
      mkdirSync(dirname(path(key)), { recursive: true });
      writeFileSync(path(key), data);
    },
  };
}

function s3View(endpoint: string, bucket: string, prefix: string): StoredView {
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  const read = async (key: string) => {
    try {
      const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: prefix + key }));
      return Buffer.from(await r.Body!.transformToByteArray());
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
      throw err;
    }
  };
  return {
    async list(folder) {
      const p = prefix + folder;
      const out: string[] = [];
      let token: string | undefined;
      do {
        const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: p, Delimiter: '/', ContinuationToken: token }));
        for (const c of r.CommonPrefixes ?? []) out.push(c.Prefix!.slice(p.length).replace(/\/$/, ''));
        for (const o of r.Contents ?? []) out.push(o.Key!.slice(p.length));
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
      return out.sort();
    },
    read,
    async exists(key) {
      return (await read(key)) !== undefined;
    },
    async remove(key) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: prefix + key }));
    },
    async write(key, data) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: prefix + key, Body: data }));
    },
  };
}
