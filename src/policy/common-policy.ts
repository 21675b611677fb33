// RFC 4745 common policy, evaluated: which rules of a ruleset apply to a request from this
// identity, at this time, in this sphere (§7, §10.1). The usage (pres-rules, IM rules) combines
// the actions and transformations of the rules that apply (§10.2: see maxOf in
// src/formats/common-policy.ts). Pure: no I/O and no clock (the time and the sphere come in).

import { domainsEqual, identityKey, type IdentityKey } from '../formats/uri.js';
import type { Condition, Conditions, IdentityChild } from '../formats/common-policy.js';

/**
 * The watcher as the front end authenticated it (RFC 5025 §3.1.1.1): the AOR bound to the digest
 * credentials, or a trusted asserted identity. Never a bare From header.
 * `anonymous` (or an empty `uri`) marks a watcher without an identity, e.g. digest user
 * "anonymous" (RFC 3261 p. 194), which RFC 5025 §3.1.1.1 does not count as authentication.
 * `otherUris`: further URIs asserted for the same watcher (a P-Asserted-Identity with both a sip:
 * and a tel: URI); RFC 5025 §3.1.1.2 matches <one>/<except> if any of them matches.
 */
export interface Identity { uri: string; anonymous?: boolean; otherUris?: readonly string[] }

/** The watcher's URIs, or undefined for a watcher without an identity. */
function watcherUris(w: Identity): IdentityKey[] | undefined {
  if (w.anonymous === true) return undefined;
  const uris = [w.uri, ...(w.otherUris ?? [])].filter((u) => u.trim() !== '');
  return uris.length === 0 ? undefined : uris.map(identityKey);
}

function hasKey(ids: readonly IdentityKey[], uri: string): boolean {
  const k = identityKey(uri).key;
  return k !== undefined && ids.some((i) => i.key === k);
}

function identityHolds(children: readonly IdentityChild[], ids: readonly IdentityKey[] | undefined): boolean {
  // RFC 5025 §3.1.1.2: a watcher whose authentication yields no identity (digest "anonymous") is
  // unauthenticated "and will match only an empty <identity> element"; RFC 4745 §7.1.1: only
  // authenticated entities match <one>/<many>. For an authenticated watcher the empty element is
  // an OR over nothing: FALSE. So <identity/> is exactly "anonymous watchers".
  if (ids === undefined) return children.length === 0;
  return children.some((c) => {
    switch (c.type) {
      case 'one':
        return hasKey(ids, c.id);
      case 'many': {
        // RFC 4745 §7.1.3: <many/> is any authenticated identity, <many domain> any in that
        // domain; <except> children are OR-ed and exclude. With several asserted URIs, one
        // matching an <except> is enough to exclude (RFC 5025 §3.1.1.2).
        const domain = c.domain;
        if (domain !== undefined && !ids.some((i) => domainsEqual(i.domain, domain))) return false;
        return !c.except.some((e) => (e.type === 'id' ? hasKey(ids, e.value) : ids.some((i) => domainsEqual(i.domain, e.value))));
      }
      default:
        return false; // RFC 4745 §7.1.1
    }
  });
}

function conditionHolds(c: Condition, ids: readonly IdentityKey[] | undefined, now: number, sphere: string | undefined): boolean {
  switch (c.type) {
    case 'identity':
      return identityHolds(c.children, ids);
    case 'sphere': {
      // RFC 4745 §7.3: tokens OR-ed, case-insensitive. RFC 5025 §3.1.2: an undefined sphere (none
      // published, or inconsistent) matches nothing.
      if (sphere === undefined || sphere.trim() === '') return false;
      const current = sphere.trim().toLowerCase();
      return c.values.some((v) => v.toLowerCase() === current);
    }
    case 'validity':
      // RFC 4745 §7.4: now >= from and now < until, for at least one pair.
      return c.intervals.some((i) => now >= i.from && now < i.until);
    default:
      return false; // RFC 4745 §7: not understood evaluates to FALSE
  }
}
/**
 * The rules whose conditions all hold for `who` (RFC 4745 §10.1), in document order. `now` and
 * `sphere` (the owner's current sphere, RFC 4745 §7.3; undefined when unknown or inconsistent)
 * come from the caller: this function reads no clock.
 */
export function matchingRules<R extends { conditions: Conditions }>(rules: readonly R[], who: Identity, now: Date, sphere?: string): R[] {
  const ids = watcherUris(who);
  const t = now.getTime(); // NaN for an invalid Date: every validity condition is then FALSE
  return rules.filter((rule) => rule.conditions.every((c: Condition) => conditionHolds(c, ids, t, sphere)));
}
