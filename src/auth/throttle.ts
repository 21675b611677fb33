// Brute-force throttle for digest authentication, SIP and XCAP alike (issue 16 #5: 3,000 wrong
// passwords in 2.4 s, then the right one accepted at once), and the one log line every
// authentication failure writes, in the fixed shape operators' fail2ban filters match:
//   auth failure: src=<ip> aor=<aor or -> reason=<reason>
//
// Failures are counted per source address and per identity in a fixed window. A source past
// `maxPerSource` is refused (password not even checked) until its lockout ends; an identity past
// `maxPerIdentity` (a guess spread over many addresses) likewise, except from addresses that proved
// that identity before: a stranger's guesses must not lock the owner out. Every table is bounded
// (the oldest entry goes first), so a flood of addresses costs bounded memory.
import type { Logger } from 'pino';

export type AuthFailureReason = 'wrong-password' | 'unknown-user' | 'stale-nonce' | 'replay' | 'uri-mismatch' | 'foreign-publish' | 'throttled';

/** The fixed warn line (issue 11's fail2ban filter matches it; keep the shape). */
export function logAuthFailure(log: Logger, src: string, aor: string | undefined, reason: AuthFailureReason): void {
  const a = aor || '-';
  log.warn({ event: 'auth-failure', src, aor: a, reason }, `auth failure: src=${src} aor=${a} reason=${reason}`);
}

export interface ThrottleOptions {
  /** Failures from one address within `windowMs` before it is locked out. */
  maxPerSource: number;
  /** Failures for one identity (from all addresses) within `windowMs` before it is locked out. */
  maxPerIdentity: number;
  windowMs: number;
  lockoutMs: number;
  /** Most addresses and identities tracked at once. */
  maxTracked: number;
}

interface Counter {
  windowStart: number;
  failures: number;
  lockedUntil: number;
}

/** An insertion-ordered map that drops its oldest entry past `max`. */
class BoundedMap<V> extends Map<string, V> {
  constructor(private readonly max: number) {
    super();
  }
  override set(k: string, v: V): this {
    if (!this.has(k) && this.size >= this.max) this.delete(this.keys().next().value!);
    return super.set(k, v);
  }
}

const KNOWN_ADDRESSES_PER_IDENTITY = 8;

export class AuthThrottle {
  private readonly sources: BoundedMap<Counter>;
  private readonly identities: BoundedMap<Counter>;
  /** Addresses each identity authenticated from (exempt from that identity's lockout). */
  private readonly known: BoundedMap<string[]>;

  constructor(private readonly o: ThrottleOptions) {
    this.sources = new BoundedMap(o.maxTracked);
    this.identities = new BoundedMap(o.maxTracked);
    this.known = new BoundedMap(o.maxTracked);
  }

  /** Milliseconds until `src` may try `identity` again; 0 when it may now. */
  retryAfter(src: string, identity: string | undefined, now = Date.now()): number {
    const s = this.sources.get(src);
    if (s && s.lockedUntil > now) return s.lockedUntil - now;
    if (identity) {
      const i = this.identities.get(identity);
      if (i && i.lockedUntil > now && !this.known.get(identity)?.includes(src)) return i.lockedUntil - now;
    }
    return 0;
  }

  failure(src: string, identity: string | undefined, now = Date.now()): void {
    this.count(this.sources, src, this.o.maxPerSource, now);
    if (identity) this.count(this.identities, identity, this.o.maxPerIdentity, now);
  }

  success(src: string, identity: string): void {
    this.sources.delete(src);
    const k = this.known.get(identity) ?? [];
    if (!k.includes(src)) {
      k.push(src);
      if (k.length > KNOWN_ADDRESSES_PER_IDENTITY) k.shift();
      this.known.set(identity, k);
    }
  }

  private count(m: BoundedMap<Counter>, key: string, max: number, now: number): void {
    let c = m.get(key);
    if (!c || now - c.windowStart >= this.o.windowMs) {
      c = { windowStart: now, failures: 0, lockedUntil: c?.lockedUntil ?? 0 };
      m.set(key, c);
    }
    if (++c.failures >= max) c.lockedUntil = now + this.o.lockoutMs;
  }
}
