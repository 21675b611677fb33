// Reading list NOTIFYs (RFC 4662) and writing rls-services documents, for every test that needs them.
import assert from 'node:assert/strict';
import { parseMultipart, rootPart } from '../../src/formats/multipart.js';
import { parseRlmi, type RlmiList } from '../../src/formats/rlmi.js';
import type { Msg } from './ua.js';

export interface ListNotify {
  msg: Msg;
  rlmi: RlmiList;
  /** Body parts by Content-ID (without <>). */
  parts: Map<string, string>;
}

/** Decodes a list NOTIFY: multipart/related whose root is RLMI. */
export function decodeList(m: Msg): ListNotify {
  const mp = parseMultipart(m.h('content-type')!, m.body);
  const root = rootPart(mp)!;
  assert.equal(root.contentType.split(';')[0], 'application/rlmi+xml');
  const parts = new Map<string, string>();
  for (const p of mp.parts) if (p !== root && p.contentId) parts.set(p.contentId, p.body);
  return { msg: m, rlmi: parseRlmi(root.body), parts };
}

/** The body part of one resource's active instance, if any. */
export function memberBody(n: ListNotify, uri: string): string | undefined {
  const cid = n.rlmi.resources.find((r) => r.uri === uri)?.instances[0]?.cid;
  return cid === undefined ? undefined : n.parts.get(cid);
}

/** An rls-services document: service URI → member URIs, each service with an inline list. */
export function rlsServices(lists: Record<string, string[]>): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<rls-services xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists">
${Object.entries(lists)
  .map(([service, members], i) => `  <service uri="${service}"><list name="l${i}">${members.map((m) => `<rl:entry uri="${m}"/>`).join('')}</list><packages><package>presence</package></packages></service>`)
  .join('\n')}
</rls-services>`;
}
