// Who sent this request? Digest authentication for users of Herald's domains, trust by address for
// configured peers (a proxy in front, a federated domain), and "anonymous" for everyone else.
// RFC 5025 §3.1.1: policy decides on the authenticated identity, never on a bare From.
import type { Logger } from 'pino';
import { aorOf, sipUriEquivalent } from '../formats/uri.js';
import { header, type HeaderList, type SipRequest } from '../sip/message.js';
import type { ServerTx } from '../sip/stack.js';
import { challenges, readDigest, verifyDigest, type NonceCounts, type NonceManager } from './digest.js';
import { logAuthFailure, type AuthFailureReason, type AuthThrottle } from './throttle.js';
import type { DigestAlgorithm, UserDirectory } from './users.js';
import { isTrustedAddress } from './trust.js';

export interface Identity {
  /** The address of record (sip:user@domain); '' when anonymous. */
  uri: string;
  anonymous: boolean;
  /** How the identity was established. */
  via: 'digest' | 'trusted-peer' | 'unauthenticated';
}

export const ANONYMOUS: Identity = { uri: '', anonymous: true, via: 'unauthenticated' };

export interface SipAuthOptions {
  /** false: the From address is taken as is (for a deployment behind an authenticating proxy). */
  enabled: boolean;
  domains: readonly string[];
  trustedPeers: readonly string[];
  /** Names a verified TLS client certificate may carry to be trusted (RFC 5922 style). */
  trustedTlsNames: readonly string[];
  users: UserDirectory;
  nonces: NonceManager;
  replay: NonceCounts;
  throttle: AuthThrottle;
  /** Accepted in credentials; the first is the one challenged. Credentials in others are refused. */
  algorithms: readonly DigestAlgorithm[];
  /**
   * "first": one WWW-Authenticate, in the first algorithm, or in the accepted one the request's own
   * credentials used (a client that answers SHA-256 is challenged in SHA-256 again). "each": one
   * challenge per algorithm (RFC 8760 §2.4), for networks whose clients all pick among several.
   */
  challenge: 'first' | 'each';
  log: Logger;
  /** Told of every failure beside its log line (the metrics count them by the same reason). */
  onFailure?: (reason: AuthFailureReason) => void;
}

export type AuthOutcome = { kind: 'identity'; identity: Identity } | { kind: 'answered' };

export class SipAuthenticator {
  constructor(private readonly o: SipAuthOptions) {}

  private failed(src: string, aor: string, reason: AuthFailureReason): void {
    logAuthFailure(this.o.log, src, aor, reason);
    this.o.onFailure?.(reason);
  }

  private fromIdentity(rq: SipRequest, via: Identity['via']): Identity {
    const pai = header(rq, 'p-asserted-identity');
    const uri = (via === 'trusted-peer' && pai ? aorOf(/<([^>]+)>/.exec(pai)?.[1] ?? pai.trim()) : undefined) ?? aorOf(rq.from.uri);
    return uri ? { uri, anonymous: false, via } : ANONYMOUS;
  }

  /**
   * Establishes the sender's identity; answers 401 (and returns 'answered') when a local user must
   * prove it. `common` headers go on the 401.
   */
  async identify(tx: ServerTx, common: HeaderList): Promise<AuthOutcome> {
    const rq = tx.request;
    if (!this.o.enabled) return { kind: 'identity', identity: this.fromIdentity(rq, 'unauthenticated') };
    const byName = rq.source.tlsNames?.some((n) => this.o.trustedTlsNames.includes(n)) ?? false;
    if (byName || isTrustedAddress(rq.source.address, this.o.trustedPeers)) return { kind: 'identity', identity: this.fromIdentity(rq, 'trusted-peer') };
    const claimed = aorOf(rq.from.uri);
    const claimedDomain = claimed?.slice(claimed.lastIndexOf('@') + 1);
    const realm = claimedDomain && this.o.domains.includes(claimedDomain) ? claimedDomain : undefined;
    if (!realm) {
      // Someone of another domain, unvouched for: it may watch, as far as the presentities' rules
      // let anonymous watchers watch, and it can publish for nobody.
      return { kind: 'identity', identity: ANONYMOUS };
    }
    let stale = false;
    let announced: DigestAlgorithm | undefined;
    const src = rq.source.address;
    for (const c of rq.credentials) {
      const d = readDigest(c.scheme, c.params);
      if (!d || d.realm.toLowerCase() !== realm || !this.o.algorithms.includes(d.algorithm)) continue;
      announced ??= d.algorithm;
      const claimedAor = `sip:${d.username}@${realm}`;
      // A throttled source or identity is refused before its password is looked at.
      const wait = this.o.throttle.retryAfter(src, claimedAor);
      if (wait > 0) {
        this.failed(src, claimedAor, 'throttled');
        tx.respond({ status: 403, reason: 'Too Many Failed Attempts', headers: [...common, ['Retry-After', String(Math.ceil(wait / 1000))]] });
        return { kind: 'answered' };
      }
      // RFC 2617 §3.2.2.5 (RFC 3261 §22.4): the digest-uri must name the Request-URI's resource;
      // an equivalent form (RFC 3261 §19.1.4) is the same resource.
      if (!sipUriEquivalent(d.uri, rq.uri)) {
        this.failed(src, claimedAor, 'uri-mismatch');
        this.o.throttle.failure(src, claimedAor);
        continue;
      }
      const v = await verifyDigest(d, rq.method, this.o);
      if (v.ok) {
        this.o.throttle.success(src, v.user.aor);
        return { kind: 'identity', identity: { uri: v.user.aor, anonymous: false, via: 'digest' } };
      }
      this.failed(src, claimedAor, v.reason);
      if (v.guess) this.o.throttle.failure(src, claimedAor);
      stale ||= v.stale;
    }
    const nonce = this.o.nonces.issue();
    // Deployed phones answer one challenge, often only MD5, and some (baresip 1.0) answer none at all
    // when one of several is an algorithm they do not know: hence one challenge unless told otherwise.
    const offered = this.o.challenge === 'each' ? this.o.algorithms : [announced ?? this.o.algorithms[0]!];
    const hdrs: [string, string][] = challenges(realm, nonce, stale, offered).map((v) => ['WWW-Authenticate', v]);
    tx.respond({ status: 401, reason: 'Unauthorized', headers: [...common, ...hdrs] });
    return { kind: 'answered' };
  }
}
