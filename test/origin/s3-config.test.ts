import { describe, expect, it } from 'vitest';
import { ConfigError, validateCluster } from '../../src/common/config.js';
import { DirStorage } from '../../src/origin/storage/dir-storage.js';
import { originStorage } from '../../src/origin/storage/open-storage.js';
import { S3Storage } from '../../src/origin/storage/s3-storage.js';

function cluster(storage?: unknown): Record<string, any> {
  return {
    signing: { keys: { k1: 'k1-secret-0123456789abcdef' }, activeKey: 'k1' },
    origin: { url: 'http://127.0.0.1:7000', adminUrl: 'http://127.0.0.1:7001', dataDir: 'data/origin', ...(storage === undefined ? {} : { storage }) },
    steering: { url: 'http://127.0.0.1:8080', adminUrl: 'http://127.0.0.1:8081' },
    isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
    edges: [{ id: 'e1', isp: 'isp-a', url: 'http://127.0.0.1:8101', adminUrl: 'http://127.0.0.1:9101', dataDir: 'data/e1', diskBytes: 1e9, memoryBytes: 1e8 }],
  };
}

const S3 = { kind: 's3', endpoint: 'http://127.0.0.1:9000', bucket: 'reelcdn-media', region: 'us-east-1', prefix: 'prod/origin', forcePathStyle: true };

function errorOf(storage: unknown): ConfigError {
  try {
    validateCluster(cluster(storage), '/base');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('origin.storage', () => {
  it('itDefaultsToTheDataFolder', () => {
    const c = validateCluster(cluster(), '/base');
    expect(c.origin.storage).toBeUndefined();
    expect(originStorage(c.origin)).toBeInstanceOf(DirStorage);
    expect(originStorage(c.origin).location).toBe('/base/data/origin');
    expect(validateCluster(cluster({ kind: 'dir' }), '/base').origin.storage).toEqual({ kind: 'dir' });
  });

  it('itTakesAnS3BucketWithAPrefixEndingInASlash', () => {
    const c = validateCluster(cluster(S3), '/base');
    expect(c.origin.storage).toEqual({ ...S3, prefix: 'prod/origin/' });
    const s = originStorage(c.origin);
    expect(s).toBeInstanceOf(S3Storage);
    expect(s.describe('catalog.json')).toBe('s3://reelcdn-media/prod/origin/catalog.json');
    // The same config, the same storage (one S3 client and its connections).
    expect(originStorage(c.origin)).toBe(s);
  });

  it('itLeavesEndpointPrefixAndPathStyleOptional', () => {
    const c = validateCluster(cluster({ kind: 's3', bucket: 'media.example', region: 'eu-west-3' }), '/base');
    expect(c.origin.storage).toEqual({ kind: 's3', bucket: 'media.example', region: 'eu-west-3', prefix: '', forcePathStyle: false });
  });

  it.each([
    ['not an object', 's3', 'origin.storage', /must be an object/],
    ['unknown kind', { kind: 'gcs' }, 'origin.storage.kind', /"dir" or "s3"/],
    ['dir with a bucket', { kind: 'dir', bucket: 'b' }, 'origin.storage.bucket', /not a setting of kind "dir"/],
    ['a typo', { ...S3, forcePathstyle: true }, 'origin.storage.forcePathstyle', /unknown setting/],
    ['no bucket', { ...S3, bucket: undefined }, 'origin.storage.bucket', /non-empty/],
    ['a bucket with capitals', { ...S3, bucket: 'My_Bucket' }, 'origin.storage.bucket', /not a bucket name/],
    ['no region', { ...S3, region: undefined }, 'origin.storage.region', /non-empty/],
    ['a bad region', { ...S3, region: 'US East' }, 'origin.storage.region', /not a region name/],
    ['an endpoint that is not http', { ...S3, endpoint: 's3://x' }, 'origin.storage.endpoint', /http/],
    ['an absolute prefix', { ...S3, prefix: '/prod' }, 'origin.storage.prefix', /relative key prefix/],
    ['a climbing prefix', { ...S3, prefix: 'prod/../x' }, 'origin.storage.prefix', /relative key prefix/],
    ['an empty part', { ...S3, prefix: 'a//b' }, 'origin.storage.prefix', /relative key prefix/],
    ['a prefix that is not text', { ...S3, prefix: 7 }, 'origin.storage.prefix', /must be a string/],
    ['path style not a boolean', { ...S3, forcePathStyle: 'yes' }, 'origin.storage.forcePathStyle', /true or false|boolean/],
  ])('itRefuses %s naming the field', (_name, storage, field, problem) => {
    const err = errorOf(storage);
    expect(err.field).toBe(field);
    expect(err.message).toMatch(problem);
    expect(err.message.split('\n')).toHaveLength(1);
  });
});
