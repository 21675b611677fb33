// The XCAP application usages Herald serves (RFC 4825 §5): for each AUID its MIME type, default
// document namespace, validation and constraints, and which documents are read-only views.
//   pres-rules      RFC 5025 §9   application/auth-policy+xml
//   resource-lists  RFC 4826 §3.4 application/resource-lists+xml
//   rls-services    RFC 4826 §4.4 application/rls-services+xml; global/index = union of users' index
//   xcap-caps       RFC 4825 §12  application/xcap-caps+xml; global/index only, generated, read-only
// Pure: no I/O.

import { NS, serializeXml, type XmlElement } from '../formats/xml.js';
import { CT } from '../formats/content-types.js';
import { presRulesUsage } from './usage-pres-rules.js';
import { resourceListsUsage, rlsServicesUsage } from './usage-lists.js';
import type { XcapUsage } from './usage.js';

export { rlsGlobalIndex } from './usage-lists.js';

/** RFC 4825 §12: the capabilities usage; validate is never reached, nothing can be written. */
const xcapCapsUsage: XcapUsage = {
  auid: 'xcap-caps',
  mime: CT.XCAP_CAPS,
  defaultNs: NS.XCAP_CAPS,
  prefixes: {},
  userDocuments: false,
  validate() { /* read-only: never stored */ },
};

export const USAGES: ReadonlyMap<string, XcapUsage> = new Map(
  [presRulesUsage, resourceListsUsage, rlsServicesUsage, xcapCapsUsage].map((u) => [u.auid, u]),
);

export function usageFor(auid: string): XcapUsage | undefined {
  return USAGES.get(auid);
}

/** RFC 4826 §4.4.7–9: rls-services/global/index, the read-only union the RLS reads. */
export const RLS_GLOBAL_INDEX = { auid: 'rls-services', owner: 'global', name: 'index' } as const;
/** RFC 4825 §12: xcap-caps/global/index. */
export const XCAP_CAPS_INDEX = { auid: 'xcap-caps', owner: 'global', name: 'index' } as const;

/** The document name whose services join the global index (RFC 4826 §4.4.7). */
export const RLS_USER_INDEX = 'index';

/** The xcap-caps document (RFC 4825 §12): the AUIDs and the namespaces this server understands. */
export function xcapCapsDocument(): string {
  const el = (name: string, children: XmlElement['children']): XmlElement => ({ ns: NS.XCAP_CAPS, name, attrs: {}, children });
  const namespaces = new Set<string>([NS.XCAP_CAPS, NS.XCAP_ERROR]);
  for (const u of USAGES.values()) {
    namespaces.add(u.defaultNs);
    for (const ns of Object.keys(u.prefixes)) namespaces.add(ns);
  }
  return serializeXml(el('xcap-caps', [
    el('auids', [...USAGES.keys()].map((a) => el('auid', [a]))),
    el('namespaces', [...namespaces].map((n) => el('namespace', [n]))),
  ]));
}
