// HTTP Digest authentication (RFC 7616) for XCAP, both ends.
//
// Server: challenges offer SHA-256 and MD5 with qop=auth. Nonces come from src/auth/digest.ts:
// self-validating (issue time + random bytes + HMAC with a secret, per process unless given), so
// none need storing, a forged one fails the HMAC, and an expired one yields stale=true when the
// digest was otherwise right (§3.3). Nonce counts must rise per nonce (§3.4, §5.12: no replay).
// The HA1 is the user's SIP HA1 (realm = SIP domain), which is why the XCAP realm is the domain
// of the XUI.
//
// Client: parses challenges, prefers SHA-256, computes the response.
import { randomBytes } from 'node:crypto';
import { NonceManager, ReplayGuard, authorizationValue, type NonceCounts, challenges, readDigest, verifyDigest } from '../auth/digest.js';
import type { AuthFailureReason, AuthThrottle } from '../auth/throttle.js';
import type { DigestAlgorithm, UserDirectory, UserRecord } from '../auth/users.js';
import { parseAuthList } from '../sip/parser.js';

export interface AuthChallenge { scheme: string; params: Map<string, string> }

/**
 * Parses a WWW-Authenticate or Authorization value: one or more `scheme param=value, ...`
 * (RFC 7235 §2.1, §4.1), with the SIP stack's linear parser (one for both protocols). Parameter names
 * are lower-cased. Unparseable input yields [].
 */
export function parseChallenges(header: string): AuthChallenge[] {
  if (header.length > 8192) return [];
  return (parseAuthList(header) ?? []).map((c) => ({ scheme: c.scheme, params: new Map(Object.entries(c.params)) }));
}

function algorithmOf(params: Map<string, string>): DigestAlgorithm | undefined {
  const a = (params.get('algorithm') ?? 'MD5').toUpperCase();
  return a === 'MD5' ? 'MD5' : a === 'SHA-256' ? 'SHA-256' : undefined;
}

export type DigestResult =
  | { ok: true; user: UserRecord }
  | { ok: false; stale: boolean; reason: string; failure?: AuthFailureReason; aor?: string; retryAfterMs?: number };

export interface DigestServerOptions {
  users: UserDirectory;
  /** Nonce lifetime (default 5 minutes). */
  lifetimeMs?: number;
  /** The key nonces are bound with (default: random, per process). */
  secret?: Buffer;
  /** Nonce counts remembered (default: 10,000 nonces, 32 per identity). */
  replay?: NonceCounts;
  /** Brute-force throttle (shared with SIP digest in Herald); default: none. */
  throttle?: AuthThrottle;
  now?: () => number;
}

/** The server side, on the nonce and replay machinery Herald's SIP digest uses (src/auth/digest.ts). */
export class DigestServer {
  private readonly nonces: NonceManager;
  private readonly replay: NonceCounts;

  constructor(private readonly opts: DigestServerOptions) {
    this.nonces = new NonceManager(opts.secret ?? randomBytes(32), opts.lifetimeMs ?? 5 * 60_000);
    this.replay = opts.replay ?? new ReplayGuard(10_000);
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** WWW-Authenticate values: SHA-256 first, as RFC 7616 §3.7 asks servers to order them. */
  challenges(realm: string, stale: boolean): string[] {
    return challenges(realm, this.nonces.issue(this.now()), stale);
  }

  /**
   * Checks an Authorization header for a request from `src`. `realmOk` says which realms this
   * resource accepts. The request-target in `uri` must equal the digest-uri (RFC 7616 §3.4.6).
   * A failure that is an authentication failure (not merely missing credentials) names its `failure`.
   */
  async verify(method: string, uri: string, header: string | undefined, realmOk: (realm: string) => boolean, src = ''): Promise<DigestResult> {
    const fail = (reason: string, stale = false): DigestResult => ({ ok: false, stale, reason });
    if (header === undefined) return fail('no credentials');
    const cred = parseChallenges(header)[0];
    const d = cred ? readDigest(cred.scheme, Object.fromEntries(cred.params)) : undefined;
    if (!d) return fail('not usable Digest credentials');
    // RFC 7616 §3.3: qop is required; the RFC 2069 form without it is not accepted.
    if (d.qop !== 'auth' || d.nc === undefined) return fail('qop=auth is required');
    if (!realmOk(d.realm)) return fail('wrong realm');
    const aor = `sip:${d.username}@${d.realm.toLowerCase()}`;
    const throttle = this.opts.throttle;
    const wait = throttle?.retryAfter(src, aor) ?? 0;
    if (wait > 0) return { ok: false, stale: false, reason: 'too many failures', failure: 'throttled', aor, retryAfterMs: wait };
    if (d.uri !== uri) {
      throttle?.failure(src, aor);
      return { ok: false, stale: false, reason: 'digest uri does not match the request', failure: 'uri-mismatch', aor };
    }
    const v = await verifyDigest(d, method, { nonces: this.nonces, replay: this.replay, users: this.opts.users }, this.now());
    if (v.ok) {
      throttle?.success(src, v.user.aor);
      return { ok: true, user: v.user };
    }
    if (v.guess) throttle?.failure(src, aor);
    return { ok: false, stale: v.stale, reason: v.reason, failure: v.reason, aor };
  }
}

/** Picks the challenge a client answers: Digest with qop=auth, SHA-256 preferred over MD5. */
export function chooseChallenge(headers: readonly string[]): AuthChallenge | undefined {
  const digests = headers.flatMap(parseChallenges).filter((c) =>
    c.scheme.toLowerCase() === 'digest' && algorithmOf(c.params) !== undefined && c.params.has('nonce') && c.params.has('realm') &&
    (c.params.get('qop') ?? '').split(',').map((q) => q.trim()).includes('auth'));
  return digests.find((c) => algorithmOf(c.params) === 'SHA-256') ?? digests[0];
}

/** The Authorization value answering `challenge` for one request (RFC 7616 §3.4). */
export function digestAuthorization(challenge: AuthChallenge, a: { username: string; password: string; method: string; uri: string; nc: number }): string {
  return authorizationValue(
    {
      algorithm: algorithmOf(challenge.params) as DigestAlgorithm,
      realm: challenge.params.get('realm') as string,
      nonce: challenge.params.get('nonce') as string,
      opaque: challenge.params.get('opaque'),
      qop: 'auth', // chooseChallenge takes qop=auth challenges only
    },
    a.username,
    a.password,
    a.method,
    a.uri,
    a.nc,
  );
}
