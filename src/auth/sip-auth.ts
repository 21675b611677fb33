// Who sent this request? Digest authentication for users of Herald's domains, trust by address for
// configured peers (a proxy in front, a federated domain), and "anonymous" for everyone else.
// RFC 5025 §3.1.1: policy decides on the authenticated identity, never on a bare From.
import type { Logger } from 'pino';
import { aorOf } from '../formats/uri.js';
import { header, type HeaderList, type SipRequest } from '../sip/message.js';
import type { ServerTx } from '../sip/stack.js';
import { challenges, expectedResponse, readDigest, safeEqualHex, type NonceManager, type ReplayGuard } from './digest.js';
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
  replay: ReplayGuard;
  /** Offered in this order; credentials in others are refused. */
  algorithms: readonly DigestAlgorithm[];
  log: Logger;
}

export type AuthOutcome = { kind: 'identity'; identity: Identity } | { kind: 'answered' };

export class SipAuthenticator {
  constructor(private readonly o: SipAuthOptions) {}

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
    for (const c of rq.credentials) {
      const d = readDigest(c.scheme, c.params);
      if (!d || d.realm.toLowerCase() !== realm || !this.o.algorithms.includes(d.algorithm)) continue;
      const nonceState = this.o.nonces.check(d.nonce);
      if (nonceState === 'invalid') continue;
      const user = await this.o.users.byCredentials(d.username, realm);
      if (!user) continue;
      if (!safeEqualHex(expectedResponse(d, user.ha1[d.algorithm], rq.method), d.response)) continue;
      // The response is right: an old nonce now only needs renewing (RFC 7616 §3.3 stale).
      if (nonceState === 'stale') {
        stale = true;
        continue;
      }
      const nc = d.nc ? parseInt(d.nc, 16) : undefined;
      if (!this.o.replay.accept(d.nonce, nc, this.o.nonces.expiresAt(d.nonce))) {
        this.o.log.warn({ user: user.aor, from: rq.source.address }, 'digest nonce count replayed');
        stale = true;
        continue;
      }
      return { kind: 'identity', identity: { uri: user.aor, anonymous: false, via: 'digest' } };
    }
    const nonce = this.o.nonces.issue();
    const hdrs: [string, string][] = challenges(realm, nonce, stale, this.o.algorithms).map((v) => ['WWW-Authenticate', v]);
    tx.respond({ status: 401, reason: 'Unauthorized', headers: [...common, ...hdrs] });
    return { kind: 'answered' };
  }
}
