// The resource-lists and rls-services application usages (RFC 4826 §3.4 and §4.4): their schemas
// (§3.2, §4.2) and additional constraints (§3.4.5, §4.4.5).
// Pure: no I/O.

import { NS, type XmlElement } from '../formats/xml.js';
import { CT } from '../formats/content-types.js';
import { canonicalOrSelf, isAbsoluteUri } from '../formats/uri.js';
import { conflict, type UniquenessConflict } from './errors.js';
import { key, validateSchema, walk, stepName, invalid, type ElementRule, type Schema } from './schema.js';
import { suggestAlternative, type ServerUniqueValue, type XcapUsage } from './usage.js';

const RL = NS.RESOURCE_LISTS;
const RLS = NS.RLS_SERVICES;

/** listType of RFC 4826 §3.2, shared by <rl:list> and the <rls:list> of a service. */
const LIST_RULES: Record<string, ElementRule> = {
  list: {
    children: {
      [key(RL, 'display-name')]: { rule: 'display-name', max: 1 },
      [key(RL, 'list')]: { rule: 'list' },
      [key(RL, 'external')]: { rule: 'external' },
      [key(RL, 'entry')]: { rule: 'entry' },
      [key(RL, 'entry-ref')]: { rule: 'entry-ref' },
    },
    order: [[key(RL, 'display-name')], [key(RL, 'list'), key(RL, 'external'), key(RL, 'entry'), key(RL, 'entry-ref')]],
  },
  entry: { children: { [key(RL, 'display-name')]: { rule: 'display-name', max: 1 } }, required: ['uri'] },
  'entry-ref': { children: { [key(RL, 'display-name')]: { rule: 'display-name', max: 1 } }, required: ['ref'] },
  external: { children: { [key(RL, 'display-name')]: { rule: 'display-name', max: 1 } } },
  'display-name': { text: 'any' },
};

const RESOURCE_LISTS_SCHEMA: Schema = {
  namespaces: new Set([RL]),
  defaultNs: RL,
  prefixes: { [RL]: 'rl' },
  root: { key: key(RL, 'resource-lists'), rule: 'resource-lists' },
  rules: { 'resource-lists': { children: { [key(RL, 'list')]: { rule: 'list' } } }, ...LIST_RULES },
};

const RLS_SCHEMA: Schema = {
  namespaces: new Set([RLS, RL]),
  defaultNs: RLS,
  prefixes: { [RL]: 'rl', [RLS]: 'rls' },
  root: { key: key(RLS, 'rls-services'), rule: 'rls-services' },
  rules: {
    'rls-services': { children: { [key(RLS, 'service')]: { rule: 'service' } } },
    service: {
      children: {
        [key(RLS, 'resource-list')]: { rule: 'resource-list', max: 1 },
        [key(RLS, 'list')]: { rule: 'list', max: 1 },
        [key(RLS, 'packages')]: { rule: 'packages', max: 1 },
      },
      order: [[key(RLS, 'resource-list'), key(RLS, 'list')], [key(RLS, 'packages')]],
      required: ['uri'],
      // serviceType: a choice of exactly one <resource-list> or <list> (RFC 4826 §4.2).
      check: (el, at) => {
        const n = el.children.filter((c) => typeof c !== 'string' && c.ns === RLS && (c.name === 'resource-list' || c.name === 'list')).length;
        if (n !== 1) invalid(at, 'a service needs exactly one <resource-list> or <list>');
      },
    },
    'resource-list': { text: isAbsoluteUri },
    packages: { children: { [key(RLS, 'package')]: { rule: 'package' } } },
    package: { text: (t) => /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(t) },
    ...LIST_RULES,
  },
};

function isListContainer(el: XmlElement): boolean {
  return (el.ns === RL && (el.name === 'list' || el.name === 'resource-lists')) || (el.ns === RLS && el.name === 'list');
}

/**
 * RFC 4826 §3.4.5: among the children of one parent, <list name>, <entry uri>, <entry-ref ref>
 * and <external anchor> are each unique (URIs compared in canonical form); entry URIs are
 * absolute, refs are relative to the XCAP root, anchors are absolute HTTP URIs.
 */
function checkLists(root: XmlElement, schema: Schema): UniquenessConflict[] {
  const found: UniquenessConflict[] = [];
  walk(root, schema, (el, at) => {
    if (!isListContainer(el)) return;
    const seen = new Map<string, Set<string>>();
    const counts = new Map<string, number>();
    for (const c of el.children) {
      if (typeof c === 'string') continue;
      const k = key(c.ns, c.name);
      const pos = (counts.get(k) ?? 0) + 1;
      counts.set(k, pos);
      if (c.ns !== RL) continue;
      const cAt = `${at}/${stepName(c, schema)}[${pos}]`;
      let attr: string;
      let value: string | undefined;
      if (c.name === 'list') { attr = 'name'; value = c.attrs['name']; }
      else if (c.name === 'entry') { attr = 'uri'; value = c.attrs['uri']; }
      else if (c.name === 'entry-ref') { attr = 'ref'; value = c.attrs['ref']; }
      else if (c.name === 'external') { attr = 'anchor'; value = c.attrs['anchor']; }
      else continue;
      if (value === undefined) continue;
      if (c.name === 'entry' && !isAbsoluteUri(value)) throw conflict({ kind: 'constraint-failure', phrase: `${cAt}/@uri is not a URI` });
      if (c.name === 'entry-ref' && (isAbsoluteUri(value) || value.startsWith('/'))) {
        throw conflict({ kind: 'constraint-failure', phrase: `${cAt}/@ref must be relative to the XCAP root` });
      }
      if (c.name === 'external' && !/^https?:\/\/\S+$/i.test(value)) {
        throw conflict({ kind: 'constraint-failure', phrase: `${cAt}/@anchor must be an absolute HTTP URI` });
      }
      const canon = c.name === 'list' ? value : canonicalOrSelf(value);
      const set = seen.get(c.name) ?? new Set<string>();
      seen.set(c.name, set);
      if (set.has(canon)) {
        const altValues = c.name === 'list' ? suggestAlternative(value, (v) => set.has(v)) : [];
        found.push({ field: `${cAt}/@${attr}`, altValues });
      }
      set.add(canon);
    }
  });
  return found;
}

function fail(conflicts: UniquenessConflict[]): void {
  if (conflicts.length > 0) throw conflict({ kind: 'uniqueness-failure', exists: conflicts });
}

function services(root: XmlElement): { el: XmlElement; pos: number }[] {
  const out: { el: XmlElement; pos: number }[] = [];
  for (const c of root.children) {
    if (typeof c !== 'string' && c.ns === RLS && c.name === 'service') out.push({ el: c, pos: out.length + 1 });
  }
  return out;
}

export const resourceListsUsage: XcapUsage = {
  auid: 'resource-lists',
  mime: CT.RESOURCE_LISTS,
  defaultNs: RL,
  prefixes: { [RL]: 'rl' },
  userDocuments: true,
  validate(root) {
    validateSchema(root, RESOURCE_LISTS_SCHEMA);
    fail(checkLists(root, RESOURCE_LISTS_SCHEMA));
  },
};

export const rlsServicesUsage: XcapUsage = {
  auid: 'rls-services',
  mime: CT.RLS_SERVICES,
  defaultNs: RLS,
  prefixes: { [RLS]: 'rls', [RL]: 'rl' },
  userDocuments: true,
  validate(root) {
    validateSchema(root, RLS_SCHEMA);
    const conflicts = checkLists(root, RLS_SCHEMA);
    // §4.4.5: service URIs are unique server-wide, so a fortiori within the document.
    const seen = new Set<string>();
    for (const s of services(root)) {
      const uri = s.el.attrs['uri'] as string;
      const canon = canonicalOrSelf(uri);
      if (seen.has(canon)) conflicts.push({ field: `rls-services/service[${s.pos}]/@uri`, altValues: suggestAlternative(uri, (v) => seen.has(canonicalOrSelf(v))) });
      seen.add(canon);
    }
    fail(conflicts);
  },
  serverUnique(root): ServerUniqueValue[] {
    return services(root).map((s) => {
      const uri = s.el.attrs['uri'] as string;
      return { field: `rls-services/service[${s.pos}]/@uri`, value: uri, canonical: canonicalOrSelf(uri) };
    });
  },
};

/**
 * RFC 4826 §4.4.8: the global document "index" is the union of the <service> elements of every
 * user's "index" document; services in documents with other names are not part of it.
 */
export function rlsGlobalIndex(userIndexes: readonly XmlElement[]): XmlElement {
  const children: XmlElement[] = [];
  for (const root of userIndexes) for (const s of services(root)) children.push(s.el);
  return { ns: RLS, name: 'rls-services', attrs: {}, children };
}
