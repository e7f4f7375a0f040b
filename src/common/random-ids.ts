import { randomFillSync } from 'node:crypto';

/**
 * Random ids (trace and span ids, play ids) cut from a pool of CSPRNG bytes. One
 * `randomBytes(8)` costs about as much as answering a small request's routing: a call into
 * OpenSSL per id, two per steering answer (trace id and span id). The pool is filled 4 KiB at a
 * time from the same generator, so the ids are as unpredictable, and each byte is handed out once.
 */
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let used = POOL_BYTES;

/** The offset of `n` fresh bytes in the pool (n ≤ POOL_BYTES). */
function take(n: number): number {
  if (used + n > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const at = used;
  used += n;
  return at;
}

/** `n` random bytes as 2n lower-case hex digits. */
export function randomHex(n: number): string {
  const at = take(n);
  return pool.toString('hex', at, at + n);
}

/** `n` random bytes as unpadded base64url. */
export function randomBase64url(n: number): string {
  const at = take(n);
  return pool.toString('base64url', at, at + n);
}
