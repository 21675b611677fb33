// HTTP conditional requests for XCAP (RFC 4825 §7.11 on RFC 7232 §3): If-Match and If-None-Match
// against the ETag of the *document*, also when the request addresses an element or attribute in
// it. A client uses them to avoid lost updates when several clients edit one document.
// Pure: no I/O.

import { XcapError } from './errors.js';

export interface EntityTag { tag: string; weak: boolean }
/** '*' or a list of entity-tags. */
export type TagList = '*' | readonly EntityTag[];

export interface Preconditions { ifMatch?: TagList; ifNoneMatch?: TagList }

/** Parses an If-Match / If-None-Match value (RFC 7232 §3.1–3.2); undefined when the header is absent or unusable. */
export function parseTagList(header: string | string[] | undefined): TagList | undefined {
  if (header === undefined) return undefined;
  const value = (Array.isArray(header) ? header.join(',') : header).trim();
  if (value === '*') return '*';
  const out: EntityTag[] = [];
  for (const m of value.matchAll(/(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"/g)) out.push({ tag: m[2] as string, weak: m[1] !== undefined });
  return out.length > 0 ? out : undefined;
}

export function quoteEtag(tag: string): string {
  return `"${tag}"`;
}

/** RFC 7232 §3.1 (strong comparison): true when an If-Match condition fails. */
export function ifMatchFails(current: string | undefined, list: TagList | undefined): boolean {
  if (list === undefined) return false;
  if (current === undefined) return true;
  if (list === '*') return false;
  return !list.some((t) => !t.weak && t.tag === current);
}

/** RFC 7232 §3.2 (weak comparison): true when an If-None-Match condition fails (the current tag is listed). */
export function ifNoneMatchFails(current: string | undefined, list: TagList | undefined): boolean {
  if (list === undefined || current === undefined) return false;
  if (list === '*') return true;
  return list.some((t) => t.tag === current);
}

/** For PUT and DELETE: a failed condition is 412 (RFC 7232 §4.2). */
export function checkPreconditions(current: string | undefined, pre: Preconditions): void {
  if (ifMatchFails(current, pre.ifMatch)) throw new XcapError(412, 'If-Match does not match the current entity-tag');
  if (ifNoneMatchFails(current, pre.ifNoneMatch)) throw new XcapError(412, 'If-None-Match matches the current entity-tag');
}
