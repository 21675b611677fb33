// Digest authentication as a client (RFC 3261 §22.2, RFC 7616 §3.4, RFC 8760 for SHA-256): the
// Authorization / Proxy-Authorization Herald sends when a peer domain challenges its SUBSCRIBE.
// The arithmetic and the header value are src/auth/digest.ts's (shared with the server side and the
// XCAP client); this file reads a SIP response's challenges and picks one.
import { randomBytes } from 'node:crypto';
import { authorizationValue } from '../../src/auth/digest.js';
import type { Credentials, SipResponse } from '../../src/sip/message.js';

export interface DigestChallenge {
  realm: string;
  nonce: string;
  opaque: string | undefined;
  algorithm: 'MD5' | 'SHA-256';
  /** 'auth' when the server offers it (RFC 7616 §3.3); undefined: RFC 2069 style. */
  qop: 'auth' | undefined;
  stale: boolean;
}

export interface ClientCredentials {
  username: string;
  password: string;
}


function unquote(v: string): string {
  const t = v.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1).replace(/\\(.)/g, '$1') : t;
}

/**
 * Parses WWW-Authenticate / Proxy-Authenticate text: one or more `Digest k=v, k="v"` challenges
 * (several header instances arrive joined with ", ").
 */
export function parseChallengeText(text: string): Credentials[] {
  const out: Credentials[] = [];
  for (const chunk of text.split(/,?\s*(?=\bDigest\s)/i)) {
    const m = /^\s*(\w+)\s+([\s\S]*)$/.exec(chunk);
    if (!m) continue;
    const params: Record<string, string> = {};
    // key=token or key="quoted, with commas"
    const re = /([A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)/g;
    for (let p = re.exec(m[2]!); p; p = re.exec(m[2]!)) params[p[1]!.toLowerCase()] = unquote(p[2]!);
    out.push({ scheme: m[1]!, params });
  }
  return out;
}

/** The challenges of a 401/407, best first: SHA-256 before MD5 (RFC 8760 §2.4), qop=auth preferred. */
export function challengesOf(res: SipResponse): DigestChallenge[] {
  const raw: Credentials[] = [...res.challenges];
  for (const name of ['www-authenticate', 'proxy-authenticate']) {
    const v = res.headers.get(name);
    if (v) raw.push(...parseChallengeText(v));
  }
  const out: DigestChallenge[] = [];
  for (const c of raw) {
    if (c.scheme.toLowerCase() !== 'digest') continue;
    const p: Record<string, string> = {};
    for (const [k, v] of Object.entries(c.params)) p[k.toLowerCase()] = unquote(v);
    const alg = (p['algorithm'] ?? 'MD5').toUpperCase();
    if ((alg !== 'MD5' && alg !== 'SHA-256') || p['realm'] === undefined || !p['nonce']) continue;
    const qops = (p['qop'] ?? '').split(',').map((q) => q.trim().toLowerCase());
    if (p['qop'] !== undefined && !qops.includes('auth')) continue; // auth-int only: cannot answer
    out.push({ realm: p['realm'], nonce: p['nonce'], opaque: p['opaque'], algorithm: alg, qop: qops.includes('auth') ? 'auth' : undefined, stale: (p['stale'] ?? '').toLowerCase() === 'true' });
  }
  return out.sort((a, b) => (a.algorithm === b.algorithm ? 0 : a.algorithm === 'SHA-256' ? -1 : 1));
}

/** The credentials value answering one challenge for a request (RFC 7616 §3.4.1, nc fixed at 1). */
export function digestResponse(ch: DigestChallenge, creds: ClientCredentials, method: string, uri: string, cnonce = randomBytes(8).toString('hex')): string {
  return authorizationValue(ch, creds.username, creds.password, method, uri, 1, cnonce);
}

/** The header answering a 401 (Authorization) or 407 (Proxy-Authorization); undefined if none fits. */
export function answerChallenge(res: SipResponse, creds: ClientCredentials, method: string, uri: string): readonly [string, string] | undefined {
  const ch = challengesOf(res)[0];
  if (!ch) return undefined;
  return [res.status === 407 ? 'Proxy-Authorization' : 'Authorization', digestResponse(ch, creds, method, uri)];
}
