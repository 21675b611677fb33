// Random identifiers (tags, Call-IDs, entity-tags) drawn from a pool of cryptographically random bytes.
//
// Why a pool: node:crypto's randomBytes makes one call into OpenSSL (and allocates a Buffer) per
// identifier, and Herald makes one or two per request on its hot path (a To tag per non-dialog
// response, an entity-tag per PUBLISH). Filling 4 KB at once and slicing from it gives the same bytes
// (the CSPRNG's output, each byte used once) at a fraction of the cost; uuid's rng pool does the same.
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let used = POOL_BYTES;

function take(n: number): number {
  if (n > POOL_BYTES) throw new RangeError('random identifier too long');
  if (used + n > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const at = used;
  used += n;
  return at;
}

/** `bytes` random bytes as hex (2·bytes characters). */
export function randomHex(bytes: number): string {
  const at = take(bytes);
  return pool.toString('hex', at, at + bytes);
}

/** `bytes` random bytes as base64url. */
export function randomBase64url(bytes: number): string {
  const at = take(bytes);
  return pool.toString('base64url', at, at + bytes);
}
