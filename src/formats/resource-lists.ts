// RFC 4826 documents: resource-lists (§3) and rls-services (§4), their uniqueness rules (URIs in
// the canonical form of ./uri.ts), and the flattening of a list into the set of URIs an RLS subscribes to
// (§4.3, with the traversal rules the RLS needs against loops and unbounded expansion).
// Pure: no I/O. flattenList is async only because the caller's resolver may fetch documents.

import {
  NS, XmlError, childElements, firstChild, parseXml, textOf, toReasonPhrase,
  type XmlElement, type XmlLimits,
} from './xml.js';
import { canonicalSipUri } from './uri.js';

export interface ListEntry { kind: 'entry'; uri: string; displayName?: string }
/** A reference to an <entry> in some resource-lists document: a path relative to the XCAP root
 *  (RFC 4826 §3.2). displayName is this element's own <display-name>, if any. */
export interface ListRef { kind: 'entry-ref'; ref: string; displayName?: string }
/** A reference to a whole <list>: an absolute HTTP(S) URI (RFC 4826 §3.2). */
export interface ListExternal { kind: 'external'; anchor: string; displayName?: string }
export interface ResourceList { name?: string; displayName?: string; items: (ListEntry | ListRef | ListExternal | ResourceList)[] }

export interface RlsService {
  uri: string;
  list?: ResourceList;
  /** Content of <resource-list>: an absolute HTTP(S) URI of a <list> (RFC 4826 §4.2). */
  resourceListRef?: string;
  /** Absent: every event package is allowed; present: only these (RFC 4826 §4.2). */
  packages?: string[];
}

export type ResourceListsErrorKind = 'xml' | 'schema' | 'uniqueness';

/**
 * Every failure to read a resource-lists or rls-services document. `kind` lets an XCAP server
 * choose its error (RFC 4825 §11: not-well-formed, schema-validation-error, uniqueness-failure).
 * The message is safe as a SIP or HTTP reason phrase.
 */
export class ResourceListsError extends Error {
  readonly kind: ResourceListsErrorKind;
  constructor(kind: ResourceListsErrorKind, message: string, options?: { cause?: unknown }) {
    super(toReasonPhrase(message), options);
    this.name = 'ResourceListsError';
    this.kind = kind;
  }
}

const schema = (what: string): ResourceListsError => new ResourceListsError('schema', what);
const unique = (what: string): ResourceListsError => new ResourceListsError('uniqueness', what);

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/** The defaults of parseXml, except for a larger size: a user's buddy lists may be long. */
const DEFAULT_LIST_LIMITS: Partial<XmlLimits> = { maxBytes: 1024 * 1024, maxElements: 50000 };

function parseDocument(xml: string, limits: Partial<XmlLimits> | undefined): XmlElement {
  try {
    return parseXml(xml, { ...DEFAULT_LIST_LIMITS, ...limits });
  } catch (e) {
    if (e instanceof XmlError) throw new ResourceListsError('xml', e.message, { cause: e });
    throw e;
  }
}

function displayNameOf(el: XmlElement, ns: ReadonlySet<string>): string | undefined {
  for (const c of childElements(el)) {
    if (ns.has(c.ns) && c.name === 'display-name') return textOf(c);
  }
  return undefined;
}

/** RFC 4826 §3.2 requires absolute HTTP URIs for <external anchor> and <resource-list>. */
function isHttpUri(s: string): boolean {
  return /^https?:\/\/[^\s/?#]+[^\s]*$/i.test(s);
}

/** A relative path reference (RFC 3986 §4.2 path-noscheme): no scheme, no authority. */
function isRelativeRef(s: string): boolean {
  if (s === '' || /\s/.test(s) || s.startsWith('//')) return false;
  const slash = s.indexOf('/');
  const firstSegment = slash === -1 ? s : s.slice(0, slash);
  return !firstSegment.includes(':');
}

/**
 * Reads one listType element (RFC 4826 §3.2). `ns` holds the namespaces its children may use:
 * the resource-lists namespace, plus the rls-services one inside a <service> (clients write both).
 * Checks the §3.4 constraints: sibling list names unique; entry URIs (canonicalized), entry-ref
 * refs and external anchors unique within their parent. Unknown children are ignored (the
 * schema has extension points everywhere).
 */
function parseList(el: XmlElement, ns: ReadonlySet<string>): ResourceList {
  const list: ResourceList = { items: [] };
  const name = el.attrs['name'];
  if (name !== undefined) list.name = name;
  const dn = displayNameOf(el, ns);
  if (dn !== undefined) list.displayName = dn;
  const names = new Set<string>();
  const uris = new Set<string>();
  const refs = new Set<string>();
  const anchors = new Set<string>();
  for (const c of childElements(el)) {
    if (!ns.has(c.ns)) continue;
    switch (c.name) {
      case 'entry': {
        const uri = c.attrs['uri']?.trim();
        if (uri === undefined || uri === '') throw schema('entry without uri');
        const key = canonicalSipUri(uri);
        if (uris.has(key)) throw unique(`duplicate entry ${uri}`);
        uris.add(key);
        const entry: ListEntry = { kind: 'entry', uri };
        const edn = displayNameOf(c, ns);
        if (edn !== undefined) entry.displayName = edn;
        list.items.push(entry);
        break;
      }
      case 'entry-ref': {
        const ref = c.attrs['ref']?.trim();
        if (ref === undefined || ref === '') throw schema('entry-ref without ref');
        if (!isRelativeRef(ref)) throw schema('entry-ref ref must be a path relative to the XCAP root');
        if (refs.has(ref)) throw unique(`duplicate entry-ref ${ref}`);
        refs.add(ref);
        const item: ListRef = { kind: 'entry-ref', ref };
        const rdn = displayNameOf(c, ns);
        if (rdn !== undefined) item.displayName = rdn;
        list.items.push(item);
        break;
      }
      case 'external': {
        const anchor = c.attrs['anchor']?.trim();
        if (anchor === undefined || anchor === '') throw schema('external without anchor');
        if (!isHttpUri(anchor)) throw schema('external anchor must be an absolute HTTP URI');
        if (anchors.has(anchor)) throw unique(`duplicate external ${anchor}`);
        anchors.add(anchor);
        const item: ListExternal = { kind: 'external', anchor };
        const xdn = displayNameOf(c, ns);
        if (xdn !== undefined) item.displayName = xdn;
        list.items.push(item);
        break;
      }
      case 'list': {
        const sub = parseList(c, ns);
        if (sub.name !== undefined) {
          if (names.has(sub.name)) throw unique(`duplicate list name ${sub.name}`);
          names.add(sub.name);
        }
        list.items.push(sub);
        break;
      }
      default:
        break; // display-name (read above) or an extension
    }
  }
  return list;
}

const RL_ONLY: ReadonlySet<string> = new Set([NS.RESOURCE_LISTS]);
const RL_OR_RLS: ReadonlySet<string> = new Set([NS.RESOURCE_LISTS, NS.RLS_SERVICES]);

/**
 * Parses a resource-lists document (RFC 4826 §3) and returns its top-level lists in document
 * order. Enforces the §3.4 uniqueness constraints at every level. Throws ResourceListsError.
 */
export function parseResourceLists(xml: string, limits?: Partial<XmlLimits>): ResourceList[] {
  const root = parseDocument(xml, limits);
  if (root.ns !== NS.RESOURCE_LISTS || root.name !== 'resource-lists') throw schema('root element must be resource-lists');
  const out: ResourceList[] = [];
  const names = new Set<string>();
  for (const el of childElements(root, NS.RESOURCE_LISTS, 'list')) {
    const list = parseList(el, RL_ONLY);
    if (list.name !== undefined) {
      if (names.has(list.name)) throw unique(`duplicate list name ${list.name}`);
      names.add(list.name);
    }
    out.push(list);
  }
  return out;
}

/**
 * Parses an rls-services document (RFC 4826 §4): each <service> has a uri, exactly one of <list>
 * or <resource-list>, and optionally <packages>. Service URIs must be unique (§4.4.5; compared
 * canonically). The <list> of a service is an rls-services element whose content is in the
 * resource-lists namespace; entries in the rls-services namespace are accepted as well.
 */
export function parseRlsServices(xml: string, limits?: Partial<XmlLimits>): RlsService[] {
  const root = parseDocument(xml, limits);
  if (root.ns !== NS.RLS_SERVICES || root.name !== 'rls-services') throw schema('root element must be rls-services');
  const out: RlsService[] = [];
  const uris = new Set<string>();
  for (const el of childElements(root, NS.RLS_SERVICES, 'service')) {
    const uri = el.attrs['uri']?.trim();
    if (uri === undefined || uri === '') throw schema('service without uri');
    const key = canonicalSipUri(uri);
    if (uris.has(key)) throw unique(`duplicate service ${uri}`);
    uris.add(key);
    const service: RlsService = { uri };
    const lists = childElements(el).filter((c) => RL_OR_RLS.has(c.ns) && c.name === 'list');
    const refs = childElements(el, NS.RLS_SERVICES, 'resource-list');
    if (lists.length + refs.length !== 1) throw schema('a service needs exactly one list or resource-list');
    const listEl = lists[0];
    const refEl = refs[0];
    if (listEl !== undefined) service.list = parseList(listEl, RL_OR_RLS);
    if (refEl !== undefined) {
      const ref = textOf(refEl);
      if (!isHttpUri(ref)) throw schema('resource-list must be an absolute HTTP URI');
      service.resourceListRef = ref;
    }
    const pk = firstChild(el, NS.RLS_SERVICES, 'packages');
    if (pk !== undefined) {
      service.packages = childElements(pk, NS.RLS_SERVICES, 'package').map((p) => textOf(p)).filter((p) => p !== '');
    }
    out.push(service);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Flattening
// ---------------------------------------------------------------------------------------------

export interface FlatMember {
  uri: string;
  displayName?: string;
  /**
   * Where the member sits, for nested RLMI: one segment per nested list below the flattened
   * list itself (so [] for its direct entries). A local sub-list contributes its name (or
   * `#n`, its 1-based position, when unnamed); an <external> list contributes its anchor,
   * which is unique where names are not. An entry-ref adds nothing: it stands for an entry.
   */
  path: string[];
}

export interface FlattenResult {
  members: FlatMember[];
  errors: string[];
  /** A reference led back to a list being expanded (RFC 4826 §4.3: answer 502 at the top). */
  loop: boolean;
  /** maxMembers was reached; later members were left out. */
  truncated: boolean;
}

export type ListResolver = (refOrAnchor: { kind: 'entry-ref' | 'external'; target: string }) => Promise<ResourceList | undefined>;

/** Anchors compare as URLs (scheme/host case, default port, dot segments); refs as strings. */
function traversalKey(kind: 'entry-ref' | 'external', target: string): string {
  if (kind === 'external') {
    try { return `external ${new URL(target).href}`; } catch { /* keep it as written */ }
  }
  return `${kind} ${target.trim()}`;
}

/**
 * Expands a list into the URIs to subscribe to (RFC 4826 §4.3), depth-first in document order.
 *
 * - `resolve` fetches what an <entry-ref> (target = ref) or <external> (target = anchor) points
 *   to. For an entry-ref it returns a list holding the referenced entry; the entry-ref's own
 *   display name, if any, then replaces the entries' names. undefined or a rejection means
 *   unresolvable: the reference is skipped and an error recorded (§4.3 allows a 502 instead;
 *   that is the caller's choice).
 * - Traversed references are remembered (the "traversed" set). A reference back to a list that is
 *   still being expanded is a loop: that branch stops, `loop` is set and an error recorded. A
 *   reference already expanded elsewhere (two lists sharing one external list) is not a loop; it
 *   is skipped silently, since all its members are already in.
 * - Duplicate URIs (canonicalSipUri) appear once: the first occurrence wins, with its display name.
 * - At most opts.maxMembers members (default 10000): then `truncated` is set and expansion stops,
 *   so no further documents are fetched. Lists nested deeper than opts.maxDepth (default 16,
 *   counting references) are skipped with an error.
 * - opts.rootAnchor, when the list itself was fetched by anchor (a <resource-list> service),
 *   marks that anchor as being expanded so a reference back to it is caught at once.
 */
export async function flattenList(
  list: ResourceList,
  resolve: ListResolver,
  opts?: { maxMembers?: number; maxDepth?: number; rootAnchor?: string },
): Promise<FlattenResult> {
  const maxMembers = opts?.maxMembers ?? 10000;
  const maxDepth = opts?.maxDepth ?? 16;
  const result: FlattenResult = { members: [], errors: [], loop: false, truncated: false };
  const seen = new Set<string>();
  const traversed = new Set<string>();
  const expanding = new Set<string>();
  if (opts?.rootAnchor !== undefined) {
    const k = traversalKey('external', opts.rootAnchor);
    traversed.add(k);
    expanding.add(k);
  }

  const add = (uri: string, displayName: string | undefined, path: string[]): void => {
    const key = canonicalSipUri(uri);
    if (seen.has(key)) return;
    if (result.members.length >= maxMembers) {
      result.truncated = true;
      result.errors.push(`member limit ${maxMembers} reached; the rest of the list is left out`);
      return;
    }
    seen.add(key);
    const m: FlatMember = { uri: uri.trim(), path };
    if (displayName !== undefined) m.displayName = displayName;
    result.members.push(m);
  };

  const follow = async (
    kind: 'entry-ref' | 'external', target: string, path: string[], depth: number, nameOverride: string | undefined,
  ): Promise<void> => {
    const key = traversalKey(kind, target);
    if (expanding.has(key)) {
      result.loop = true;
      result.errors.push(`loop: ${kind} ${target} refers back to a list being expanded`);
      return;
    }
    if (traversed.has(key)) return;
    if (depth > maxDepth) {
      result.errors.push(`${kind} ${target} nested deeper than ${maxDepth} levels; skipped`);
      return;
    }
    traversed.add(key);
    let resolved: ResourceList | undefined;
    try {
      resolved = await resolve({ kind, target });
    } catch (e) {
      result.errors.push(`unresolvable ${kind} ${target}: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (resolved === undefined) {
      result.errors.push(`unresolvable ${kind} ${target}`);
      return;
    }
    expanding.add(key);
    try {
      await walk(resolved, kind === 'external' ? [...path, target] : path, depth, nameOverride);
    } finally {
      expanding.delete(key);
    }
  };

  const walk = async (l: ResourceList, path: string[], depth: number, nameOverride?: string): Promise<void> => {
    for (let i = 0; i < l.items.length; i++) {
      if (result.truncated) return;
      const item = l.items[i];
      if (item === undefined) continue;
      if (!('kind' in item)) {
        if (depth + 1 > maxDepth) {
          result.errors.push(`list ${item.name ?? `#${i + 1}`} nested deeper than ${maxDepth} levels; skipped`);
          continue;
        }
        await walk(item, [...path, item.name ?? `#${i + 1}`], depth + 1);
      } else if (item.kind === 'entry') {
        add(item.uri, nameOverride ?? item.displayName, path);
      } else if (item.kind === 'entry-ref') {
        await follow('entry-ref', item.ref, path, depth + 1, item.displayName);
      } else {
        await follow('external', item.anchor, path, depth + 1, undefined);
      }
    }
  };

  await walk(list, [], 0);
  return result;
}
