// SIP URI comparison (RFC 3261 §19.1.4), for the digest `uri` against the Request-URI (RFC 2617
// §3.2.2.5 via RFC 3261 §22.4). The seam where the shared URI-equality module of src/formats/ plugs
// in: callers depend on this one function only.
import { parseSipUri } from './codec.js';

/** Parameters that, present in either URI, must be present and equal in both (§19.1.4). */
const MUST_MATCH = ['user', 'ttl', 'method', 'maddr', 'transport'];

function decodeEscapes(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * True when two sip/sips URIs are equivalent: same scheme, user (case-sensitive, escapes decoded),
 * host (case-insensitive), port (absent ≠ 5060, as the RFC says), the §19.1.4 parameters when
 * either has them, and any other parameter both have (case-insensitive values).
 */
export function sipUrisEquivalent(a: string, b: string): boolean {
  const x = parseSipUri(a.trim());
  const y = parseSipUri(b.trim());
  if (!x || !y) return false;
  if (x.scheme !== y.scheme || x.host !== y.host || x.port !== y.port) return false;
  if (decodeEscapes(x.user ?? '') !== decodeEscapes(y.user ?? '')) return false;
  const px = lower(x.params);
  const py = lower(y.params);
  for (const k of MUST_MATCH) if (px.get(k) !== py.get(k)) return false;
  for (const [k, v] of px) if (py.has(k) && py.get(k) !== v) return false;
  return true;
}

function lower(p: Record<string, string | null>): Map<string, string | null> {
  return new Map(Object.entries(p).map(([k, v]) => [k.toLowerCase(), v === null ? null : decodeEscapes(v).toLowerCase()]));
}
