// HTTP/SIP digest (RFC 3261 §22, RFC 7616, RFC 8760 for SHA-256): nonces bound to this server by an
// HMAC, expiring after a lifetime (then "stale"), and nonce counts that only go up (no replay).
// Written here rather than taken from the `sip` package: its digest.js knows MD5 only and keeps no
// nonce state of its own.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { hashHex, type DigestAlgorithm, type UserDirectory, type UserRecord } from './users.js';

export type NonceCheck = 'valid' | 'stale' | 'invalid';

export class NonceManager {
  constructor(private readonly secret: Buffer, readonly lifetimeMs = 300_000) {}

  /** nonce = base64url(issued-at ms ‖ 8 random bytes ‖ HMAC-SHA256(secret, both)[0..16]). */
  issue(now = Date.now()): string {
    const body = Buffer.alloc(16);
    body.writeBigUInt64BE(BigInt(now), 0);
    randomBytes(8).copy(body, 8);
    return Buffer.concat([body, this.mac(body)]).toString('base64url');
  }

  check(nonce: string, now = Date.now()): NonceCheck {
    const raw = Buffer.from(nonce, 'base64url');
    if (raw.length !== 32 || raw.toString('base64url') !== nonce) return 'invalid';
    const body = raw.subarray(0, 16);
    if (!timingSafeEqual(raw.subarray(16), this.mac(body))) return 'invalid';
    const issued = Number(body.readBigUInt64BE(0));
    if (issued > now + 5_000) return 'invalid';
    return now - issued > this.lifetimeMs ? 'stale' : 'valid';
  }

  expiresAt(nonce: string): number {
    const raw = Buffer.from(nonce, 'base64url');
    return raw.length >= 8 ? Number(raw.readBigUInt64BE(0)) + this.lifetimeMs : 0;
  }

  private mac(body: Buffer): Buffer {
    return createHmac('sha256', this.secret).update(body).digest().subarray(0, 16);
  }
}

export type ReplayVerdict = 'accepted' | 'replayed' | 'stale';

/** Nonce counts as verifyDigest needs them: this process's ReplayGuard, or the cluster's (src/cluster/shared-auth.ts). */
export interface NonceCounts {
  accept(nonce: string, nc: number | undefined, expiresAt: number, owner: string, now?: number): ReplayVerdict | Promise<ReplayVerdict>;
}

interface SeenNonce {
  nc: number;
  expiresAt: number;
  owner: string;
}

/**
 * Remembers the highest nonce count seen per nonce; a response with qop must raise it (RFC 7616
 * §3.4, §5.12). Memory is bounded without letting one identity lock out another (issue 16 #3: one
 * account's fresh logins filled the table, after which every new nonce was refused): each identity
 * keeps at most `perOwner` nonces, evicting its own oldest, and a full table evicts the oldest entry
 * overall. An evicted nonce cannot be replayed: nonces no newer than the last one evicted (for its
 * owner, or overall) are answered "stale", and the client simply retries with a fresh nonce.
 */
export class ReplayGuard implements NonceCounts {
  private readonly seen = new Map<string, SeenNonce>();
  private readonly byOwner = new Map<string, string[]>();
  /** Per owner, and overall: nonces expiring no later than this were evicted or are older. */
  private readonly ownerFloor = new Map<string, number>();
  private floor = 0;

  constructor(
    private readonly maxEntries = 100_000,
    private readonly perOwner = 32,
  ) {}

  /**
   * `nc` undefined (no qop, RFC 2069 style): the nonce is good for one use only. `owner` is the
   * identity the digest proved (user@realm).
   */
  accept(nonce: string, nc: number | undefined, expiresAt: number, owner: string, now = Date.now()): ReplayVerdict {
    const e = this.seen.get(nonce);
    const value = nc ?? Number.POSITIVE_INFINITY;
    if (e) {
      if (nc === undefined || nc <= e.nc) return 'replayed';
      e.nc = value;
      return 'accepted';
    }
    if (expiresAt <= this.floor || expiresAt <= (this.ownerFloor.get(owner) ?? 0)) return 'stale';
    const mine = this.byOwner.get(owner) ?? [];
    if (mine.length >= this.perOwner) this.evict(mine.shift()!, true);
    if (this.seen.size >= this.maxEntries) this.sweep(now);
    if (this.seen.size >= this.maxEntries) this.evict(this.seen.keys().next().value!, false);
    this.seen.set(nonce, { nc: value, expiresAt, owner });
    mine.push(nonce);
    this.byOwner.set(owner, mine);
    return 'accepted';
  }

  private evict(nonce: string, ownOldest: boolean): void {
    const e = this.seen.get(nonce);
    if (!e) return;
    this.seen.delete(nonce);
    if (ownOldest) {
      this.ownerFloor.set(e.owner, Math.max(this.ownerFloor.get(e.owner) ?? 0, e.expiresAt));
      return;
    }
    this.floor = Math.max(this.floor, e.expiresAt);
    const list = this.byOwner.get(e.owner);
    const i = list?.indexOf(nonce) ?? -1;
    if (list && i >= 0) list.splice(i, 1);
  }

  sweep(now = Date.now()): void {
    for (const [k, v] of this.seen) if (v.expiresAt <= now) this.seen.delete(k);
    for (const [owner, list] of this.byOwner) {
      const live = list.filter((n) => this.seen.has(n));
      if (live.length === 0) this.byOwner.delete(owner);
      else this.byOwner.set(owner, live);
    }
    for (const [owner, f] of this.ownerFloor) if (f <= now) this.ownerFloor.delete(owner);
  }
}

export interface DigestParams {
  username: string;
  realm: string;
  nonce: string;
  uri: string;
  response: string;
  algorithm: DigestAlgorithm;
  qop: 'auth' | undefined;
  nc: string | undefined;
  cnonce: string | undefined;
}

/** Reads digest parameters from an Authorization header's parameters; undefined if incomplete. */
export function readDigest(scheme: string, p: Record<string, string>): DigestParams | undefined {
  if (scheme.toLowerCase() !== 'digest') return undefined;
  const alg = (p['algorithm'] ?? 'MD5').toUpperCase();
  if (alg !== 'MD5' && alg !== 'SHA-256') return undefined;
  const { username, realm, nonce, uri, response } = p;
  if (!username || !realm || !nonce || !uri || !response) return undefined;
  const qop = p['qop'];
  if (qop !== undefined && qop !== 'auth') return undefined;
  if (qop && (!p['nc'] || !/^[0-9a-f]{8}$/i.test(p['nc']) || !p['cnonce'])) return undefined;
  return { username, realm, nonce, uri, response: response.toLowerCase(), algorithm: alg, qop, nc: p['nc'], cnonce: p['cnonce'] };
}

/** The response value (RFC 7616 §3.4.1): with qop=auth when nc and cnonce are given, RFC 2069 style otherwise. */
export function responseHex(algorithm: DigestAlgorithm, ha1: string, nonce: string, method: string, uri: string, qop?: { nc: string; cnonce: string }): string {
  const ha2 = hashHex(algorithm, `${method}:${uri}`);
  return qop ? hashHex(algorithm, `${ha1}:${nonce}:${qop.nc}:${qop.cnonce}:auth:${ha2}`) : hashHex(algorithm, `${ha1}:${nonce}:${ha2}`);
}

/** The expected response to a received digest (server side). */
export function expectedResponse(d: DigestParams, ha1: string, method: string): string {
  return responseHex(d.algorithm, ha1, d.nonce, method, d.uri, d.qop ? { nc: d.nc!, cnonce: d.cnonce! } : undefined);
}

/** A challenge as a client answers it (Herald towards a remote domain or an external XCAP server). */
export interface ClientChallenge {
  algorithm: DigestAlgorithm;
  realm: string;
  nonce: string;
  opaque?: string | undefined;
  qop: 'auth' | undefined;
}

const quoted = (s: string): string => `"${s.replace(/["\\]/g, '\\$&')}"`;

/** The Authorization (or Proxy-Authorization) value answering a challenge (RFC 7616 §3.4). */
export function authorizationValue(ch: ClientChallenge, username: string, password: string, method: string, uri: string, nc = 1, cnonce = randomBytes(8).toString('hex')): string {
  const ha1 = hashHex(ch.algorithm, `${username}:${ch.realm}:${password}`);
  const ncHex = nc.toString(16).padStart(8, '0');
  const response = responseHex(ch.algorithm, ha1, ch.nonce, method, uri, ch.qop ? { nc: ncHex, cnonce } : undefined);
  const parts = [`username=${quoted(username)}`, `realm=${quoted(ch.realm)}`, `nonce=${quoted(ch.nonce)}`, `uri=${quoted(uri)}`, `response=${quoted(response)}`, `algorithm=${ch.algorithm}`];
  if (ch.qop) parts.push('qop=auth', `nc=${ncHex}`, `cnonce=${quoted(cnonce)}`);
  if (ch.opaque !== undefined) parts.push(`opaque=${quoted(ch.opaque)}`);
  return `Digest ${parts.join(', ')}`;
}

export function safeEqualHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

/** WWW-Authenticate values, one per algorithm in order of preference (RFC 8760 §2.4). */
export function challenges(realm: string, nonce: string, stale: boolean, algorithms: readonly DigestAlgorithm[] = ['SHA-256', 'MD5']): string[] {
  const common = `realm="${realm}", nonce="${nonce}", qop="auth"${stale ? ', stale=true' : ''}`;
  return algorithms.map((a) => `Digest ${common}, algorithm=${a}`);
}

/** What a digest failed on, in the words of the auth-failure log line (src/auth/throttle.ts). */
export type DigestFailure = 'wrong-password' | 'unknown-user' | 'stale-nonce' | 'replay';

export type DigestVerdict =
  | { ok: true; user: UserRecord }
  | {
      ok: false;
      reason: DigestFailure;
      /** The digest was right but its nonce old (or evicted): answer stale=true, the client retries. */
      stale: boolean;
      /** Counts towards the brute-force throttle (a guess, not a nonce's age). */
      guess: boolean;
    };

export interface DigestContext {
  nonces: NonceManager;
  replay: NonceCounts;
  users: Pick<UserDirectory, 'byCredentials'>;
}

/**
 * One digest response checked in RFC 7616 order, for SIP and XCAP alike: nonce ours, user known,
 * response right, nonce fresh, nonce count risen.
 */
export async function verifyDigest(d: DigestParams, method: string, c: DigestContext, now = Date.now()): Promise<DigestVerdict> {
  const state = c.nonces.check(d.nonce, now);
  if (state === 'invalid') return { ok: false, reason: 'stale-nonce', stale: false, guess: false };
  const user = await c.users.byCredentials(d.username, d.realm.toLowerCase());
  if (!user) return { ok: false, reason: 'unknown-user', stale: false, guess: true };
  if (!safeEqualHex(expectedResponse(d, user.ha1[d.algorithm], method), d.response)) return { ok: false, reason: 'wrong-password', stale: false, guess: true };
  // Only a digest that was otherwise right earns stale=true (RFC 7616 §3.3).
  if (state === 'stale') return { ok: false, reason: 'stale-nonce', stale: true, guess: false };
  const nc = d.nc !== undefined ? parseInt(d.nc, 16) : undefined;
  const v = await c.replay.accept(d.nonce, nc, c.nonces.expiresAt(d.nonce), user.aor, now);
  if (v === 'replayed') return { ok: false, reason: 'replay', stale: true, guess: true };
  if (v === 'stale') return { ok: false, reason: 'stale-nonce', stale: true, guess: false };
  return { ok: true, user };
}
