// Canonical forms of URIs for the uniqueness constraints of RFC 4826 (§3.4.5, §4.4.5): two
// spellings of one SIP URI ("sip:Bob@EXAMPLE.com;Transport=TCP" and "sip:Bob@example.com;transport=tcp")
// must count as a duplicate, or a list could hold the same member twice and an RLS service URI
// could be claimed twice. Comparison rules follow RFC 3261 §19.1.4: the user part is
// case-sensitive, everything else is not; escaped unreserved characters equal themselves; URI
// headers do not identify the resource (dropped). tel: follows RFC 3966 §4 (visual separators
// are not significant).
// Pure: no I/O.

const UNRESERVED = /[A-Za-z0-9\-_.!~*'()]/;

/** Decodes %XX of unreserved characters and upper-cases the hex of the rest (RFC 3986 §6.2.2). */
function normalizeEscapes(s: string): string {
  return s.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
}

function canonicalSip(scheme: string, rest: string): string {
  const q = rest.indexOf('?');
  const noHeaders = q === -1 ? rest : rest.slice(0, q);
  const at = noHeaders.lastIndexOf('@');
  const user = at === -1 ? '' : noHeaders.slice(0, at);
  const hostAndParams = at === -1 ? noHeaders : noHeaders.slice(at + 1);
  const [hostport = '', ...params] = hostAndParams.split(';');
  const sorted = params
    .filter((p) => p !== '')
    .map((p) => normalizeEscapes(p).toLowerCase())
    .sort();
  const userPart = user === '' ? '' : `${normalizeEscapes(user)}@`;
  return `${scheme}:${userPart}${hostport.toLowerCase()}${sorted.map((p) => `;${p}`).join('')}`;
}

function canonicalTel(rest: string): string {
  const [num = '', ...params] = rest.split(';');
  const digits = num.replace(/[-.()]/g, '').toLowerCase();
  return `tel:${digits}${params.map((p) => `;${normalizeEscapes(p).toLowerCase()}`).sort().join('')}`;
}

/** The form used to compare URIs for equality; the original text is what is stored and shown. */
export function canonicalUri(uri: string): string {
  const u = uri.trim();
  const colon = u.indexOf(':');
  if (colon <= 0) return normalizeEscapes(u);
  const scheme = u.slice(0, colon).toLowerCase();
  const rest = u.slice(colon + 1);
  if (scheme === 'sip' || scheme === 'sips') return canonicalSip(scheme, rest);
  if (scheme === 'tel') return canonicalTel(rest);
  return `${scheme}:${normalizeEscapes(rest)}`;
}

/** True for an absolute URI: a scheme (RFC 3986 §3.1) followed by something. */
export function isAbsoluteUri(s: string): boolean {
  return /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(s.trim());
}
