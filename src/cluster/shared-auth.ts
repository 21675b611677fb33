// Digest authentication across nodes: a challenge from one node answered at another.
//
// Nonces are stateless (an HMAC over issue time and randomness, src/auth/digest.ts), so sharing the
// secret is enough for every node to accept every node's nonces: the first node to start puts it in
// Redis with HSETNX, and every node uses the one that is there (two nodes starting at once agree).
//
// Nonce counts are SHARED, not made safe by binding nonces to a node: a client may send each request
// to another node (a load balancer in front), and a response replayed at another node must still be
// refused (RFC 7616 §3.4, §5.12). Each count is a Redis key that expires with its nonce; a script
// raises it only upward, atomically, so two nodes cannot both accept one count. The node's own
// ReplayGuard is asked first: a replay it saw itself costs no round trip, and its bounds (per
// identity, overall) keep applying.
import { randomBytes } from 'node:crypto';
import type { NonceCounts, ReplayGuard, ReplayVerdict } from '../auth/digest.js';
import type { RedisLink } from './redis.js';

/** The hash and field the single node's meta collection uses too (src/auth/secret.ts), on Redis. */
const SECRET_HASH = 'herald:s:meta';
const SECRET_FIELD = 'nonce-secret';
const COUNT_PREFIX = 'herald:nc:';

/** The cluster's nonce secret: this node's fresh one if it is the first, otherwise the one already there. */
export async function sharedNonceSecret(link: RedisLink): Promise<Buffer> {
  const fresh = JSON.stringify(randomBytes(32).toString('base64'));
  const [, stored] = await link.run((c) => c.multi().hSetNX(SECRET_HASH, SECRET_FIELD, fresh).hGet(SECRET_HASH, SECRET_FIELD).exec());
  return Buffer.from(JSON.parse(String(stored)) as string, 'base64');
}

/**
 * KEYS[1] the nonce's count; ARGV[1] the new count ("once" for a digest without qop: one use only),
 * ARGV[2] milliseconds until the nonce is stale. 1: accepted, 0: replayed.
 */
const RAISE_COUNT = `
local cur = redis.call('GET', KEYS[1])
if cur then
  if cur == 'once' or ARGV[1] == 'once' or tonumber(ARGV[1]) <= tonumber(cur) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

export class SharedNonceCounts implements NonceCounts {
  constructor(
    private readonly link: RedisLink,
    private readonly local: ReplayGuard,
  ) {}

  async accept(nonce: string, nc: number | undefined, expiresAt: number, owner: string, now = Date.now()): Promise<ReplayVerdict> {
    const mine = this.local.accept(nonce, nc, expiresAt, owner, now);
    if (mine !== 'accepted') return mine;
    // A second past the nonce's lifetime: after that the nonce itself is stale on every node.
    const ttl = Math.max(1000, expiresAt - now + 1000);
    const r = await this.link.run((c) => c.eval(RAISE_COUNT, { keys: [COUNT_PREFIX + nonce], arguments: [nc === undefined ? 'once' : String(nc), String(ttl)] }));
    return r === 1 ? 'accepted' : 'replayed';
  }
}
