// Media types Herald reads and writes, and the choice of presence body format for a watcher.

export const CT = {
  PIDF: 'application/pidf+xml',
  XPIDF: 'application/xpidf+xml',
  LPIDF: 'application/lpidf+xml',
  CPIM_PIDF: 'application/cpim-pidf+xml',
  PIDF_DIFF: 'application/pidf-diff+xml',
  RLMI: 'application/rlmi+xml',
  MULTIPART_RELATED: 'multipart/related',
  WATCHERINFO: 'application/watcherinfo+xml',
  RESOURCE_LISTS: 'application/resource-lists+xml',
  RLS_SERVICES: 'application/rls-services+xml',
  AUTH_POLICY: 'application/auth-policy+xml',
  XCAP_ERROR: 'application/xcap-error+xml',
  XCAP_CAPS: 'application/xcap-caps+xml',
  XCAP_EL: 'application/xcap-el+xml',
  XCAP_ATT: 'application/xcap-att+xml',
  XCAP_NS: 'application/xcap-ns+xml',
} as const;

export type PresenceContentType = typeof CT.PIDF | typeof CT.XPIDF | typeof CT.CPIM_PIDF | typeof CT.LPIDF;

/** Candidates in order of preference when the watcher rates them equally: PIDF is the
 *  mandatory, richest format (RFC 3856 §6.6); cpim-pidf keeps more than xpidf; lpidf (SER's
 *  light PIDF: open/closed per contact, nothing else) keeps least. */
const PRESENCE_TYPES: readonly PresenceContentType[] = [CT.PIDF, CT.CPIM_PIDF, CT.XPIDF, CT.LPIDF];

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The lowercased type/subtype of a Content-Type (or Accept element), without parameters. */
export function mediaType(contentTypeHeader: string | undefined): string | undefined {
  if (contentTypeHeader === undefined) return undefined;
  const semi = contentTypeHeader.indexOf(';');
  const bare = (semi === -1 ? contentTypeHeader : contentTypeHeader.slice(0, semi)).trim();
  const slash = bare.indexOf('/');
  if (slash === -1) return undefined;
  const type = bare.slice(0, slash).trim();
  const sub = bare.slice(slash + 1).trim();
  if (!TOKEN.test(type) || !TOKEN.test(sub)) return undefined;
  return `${type}/${sub}`.toLowerCase();
}

/** Splits on commas outside double-quoted strings (parameter values may be quoted). */
function splitList(header: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < header.length; i++) {
    const ch = header[i] as string;
    if (quoted && ch === '\\') { cur += ch + (header[i + 1] ?? ''); i++; continue; }
    if (ch === '"') quoted = !quoted;
    if (ch === ',' && !quoted) { out.push(cur); cur = ''; continue; }
    cur += ch;
  }
  out.push(cur);
  return out;
}

interface Range { type: string; sub: string; q: number; position: number }

function parseRange(item: string, position: number): Range | undefined {
  const parts = item.split(';');
  const mt = mediaType(parts[0]);
  if (mt === undefined) return undefined;
  const [type, sub] = mt.split('/') as [string, string];
  if (type === '*' && sub !== '*') return undefined;
  let q = 1;
  for (const p of parts.slice(1)) {
    const eq = p.indexOf('=');
    if (eq === -1 || p.slice(0, eq).trim().toLowerCase() !== 'q') continue;
    const v = p.slice(eq + 1).trim();
    // RFC 3261 §25.1 qvalue: "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ]; a bad one voids the range.
    if (!/^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$/.test(v)) return undefined;
    q = Number(v);
  }
  return { type, sub, q, position };
}

/** 2 = exact, 1 = type/*, 0 = *\/*, -1 = no match. */
function specificity(r: Range, candidate: string): number {
  const [type, sub] = candidate.split('/') as [string, string];
  if (r.type === type && r.sub === sub) return 2;
  if (r.type === type && r.sub === '*') return 1;
  if (r.type === '*' && r.sub === '*') return 0;
  return -1;
}

function rangesOf(acceptHeader: string): Range[] {
  const ranges: Range[] = [];
  splitList(acceptHeader).forEach((item, i) => {
    if (item.trim() === '') return;
    const r = parseRange(item, i);
    if (r) ranges.push(r);
  });
  return ranges;
}

/** The q-value of the most specific range matching `candidate` (0: none), and where it stands. */
function quality(ranges: readonly Range[], candidate: string): { q: number; position: number } {
  let spec = -1;
  let q = 0;
  let position = Infinity;
  for (const r of ranges) {
    const s = specificity(r, candidate);
    if (s < 0 || s < spec) continue;
    if (s > spec || r.q > q) { q = r.q; position = r.position; }
    spec = s;
  }
  return spec < 0 ? { q: 0, position: Infinity } : { q, position };
}

/** Whether a present Accept header admits `type` (RFC 3261 §20.1 with the RFC 7231 §5.3.2 rules). */
export function acceptsType(acceptHeader: string, type: string): boolean {
  return quality(rangesOf(acceptHeader), type).q > 0;
}

/**
 * Chooses the presence body format for a SUBSCRIBE. No Accept header means PIDF (RFC 3856 §6.6,
 * RFC 6665 §7.1.1 / §8.4: the package's default). Otherwise each candidate gets the q-value of
 * the most specific matching range (RFC 7231 §5.3.2 rules, as RFC 3261 §20.1 borrows them; among
 * equally specific ranges the highest q); the highest q above 0 wins; ties go to PIDF, then to the
 * range listed first, then cpim-pidf, xpidf, lpidf. Undefined means nothing fits (answer 406).
 * An Accept header that is present but empty accepts nothing (RFC 3261 §20.1). Several Accept
 * header fields must be joined with commas before calling.
 */
export function negotiatePresenceType(acceptHeader: string | undefined): PresenceContentType | undefined {
  if (acceptHeader === undefined) return CT.PIDF;
  const ranges = rangesOf(acceptHeader);
  let best: { ct: PresenceContentType; q: number; position: number; pref: number } | undefined;
  PRESENCE_TYPES.forEach((ct, pref) => {
    const { q, position } = quality(ranges, ct);
    if (q <= 0) return;
    // Candidates are visited in preference order, so PIDF, visited first, keeps every tie.
    const better = best === undefined || q > best.q ||
      (q === best.q && best.pref !== 0 && position < best.position);
    if (better) best = { ct, q, position, pref };
  });
  return best?.ct;
}

/**
 * Whether an Accept header names `type` itself with q > 0 (a wildcard does not count): for opt-in
 * formats such as RFC 5263 partial notification, which a watcher asks for by name.
 */
export function acceptsExactly(acceptHeader: string | undefined, type: string): boolean {
  if (acceptHeader === undefined) return false;
  return splitList(acceptHeader).some((item, i) => {
    const r = item.trim() === '' ? undefined : parseRange(item, i);
    return r !== undefined && `${r.type}/${r.sub}` === type && r.q > 0;
  });
}
