import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ingestTitle } from '../../src/origin/ingest.js';
import { FIXTURES, type RunningOrigin, authHeader, originTestConfig, startTestOrigin } from '../helpers/origin-harness.js';
import { rawRequest } from '../helpers/origin-http.js';
import { useStorage } from '../helpers/origin-storages.js';

/**
 * A store that fails a read (throttling, a 5xx) is not a title being replaced (issue 14, P2):
 * /o/ answers 503 with Retry-After saying the store failed, counts it by a bounded reason in
 * reelcdn_origin_store_errors_total, and does not go and re-read the catalog for it. An object
 * truly gone is still the "being replaced" answer.
 */
const FILE = 'stream_360p.mp4';
const st = useStorage('s3');

describe('an origin on S3 whose store fails reads', () => {
  const started: RunningOrigin[] = [];
  afterEach(async () => {
    st.s3().fault = undefined;
    await Promise.all(started.splice(0).map((o) => o.close()));
  });

  const storeErrors = async (o: RunningOrigin): Promise<Record<string, number>> => {
    const text = await (await request(`${o.adminUrl}/metrics`, { headers: authHeader })).body.text();
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^reelcdn_origin_store_errors_total\{reason="([^"]+)"\} (\d+)/gm)) out[m[1]!] = Number(m[2]);
    return out;
  };

  it('answers503WithRetryAfterSayingTheStoreFailedAndCountsItByReason', async () => {
    const config = st.on(originTestConfig());
    await ingestTitle(config, 'movie', join(FIXTURES, 'hls-bytes'));
    const o = await startTestOrigin(config);
    started.push(o);
    expect(await storeErrors(o)).toEqual({ throttled: 0, 'server-error': 0, unreachable: 0, refused: 0 });

    // Throttled: every read of a title's object is a 503 SlowDown (the SDK's retries included).
    st.s3().fault = (r) => (r.method === 'GET' && r.path.includes('/titles/') ? { status: 503, code: 'SlowDown' } : undefined);
    const mark = st.s3().requests.length;
    const slow = await rawRequest(o.publicUrl, o.signed(`/o/movie/${FILE}`), { headers: { range: 'bytes=0-99' } });
    expect(slow.status).toBe(503);
    expect(slow.headers['retry-after']).toBe('1');
    expect(slow.body.toString()).toContain('the object store failed (throttled)');
    expect(slow.body.toString()).not.toContain('being replaced');
    // Not taken for a replaced title: the catalog is not looked at again.
    expect(st.s3().requests.slice(mark).filter((r) => r.path.includes('catalog.json'))).toEqual([]);

    // A 500 from the store.
    st.s3().fault = (r) => (r.method === 'GET' && r.path.includes('/titles/') ? { status: 500, code: 'InternalError' } : undefined);
    const failing = await rawRequest(o.publicUrl, o.signed(`/o/movie/${FILE}`));
    expect(failing.status).toBe(503);
    expect(failing.body.toString()).toContain('the object store failed (server-error)');
    expect(await storeErrors(o)).toMatchObject({ throttled: 1, 'server-error': 1 });

    // The store recovers: served.
    st.s3().fault = undefined;
    expect((await rawRequest(o.publicUrl, o.signed(`/o/movie/${FILE}`), { headers: { range: 'bytes=0-99' } })).status).toBe(206);

    // An object truly gone (404) is still a title being replaced, not a store failure.
    st.s3().fault = (r) => (r.method === 'GET' && r.path.includes('/titles/') ? { status: 404, code: 'NoSuchKey' } : undefined);
    const gone = await rawRequest(o.publicUrl, o.signed(`/o/movie/${FILE}`), { headers: { range: 'bytes=0-99' } });
    expect(gone.status).toBe(503);
    expect(gone.body.toString()).toContain('being replaced');
    expect(await storeErrors(o)).toMatchObject({ throttled: 1, 'server-error': 1 });
  });
});
