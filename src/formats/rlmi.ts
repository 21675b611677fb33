// RLMI: Resource List Meta-Information (RFC 4662 §5), the root part of every list NOTIFY body.
//
// renderRlmi() refuses to write a document that breaks one of the RFC's MUSTs, so a bug in the
// list server shows up as an exception in Herald rather than as a confused subscriber; parseRlmi()
// checks the same MUSTs on documents we receive (back-end subscriptions to another domain's RLS
// for nested lists) and is lenient only where deployed servers are known to deviate harmlessly.
// Pure: no I/O, no clock.

import {
  NS, XmlError, childElements, escapeXml, parseXml, textOf, toReasonPhrase,
  type XmlElement, type XmlLimits,
} from './xml.js';

export type InstanceState = 'active' | 'pending' | 'terminated';

/**
 * One subscription instance of a resource (RFC 4662 §5.2). `cid` (Content-ID of the body part
 * holding the state, without <>) MUST be present when active; `reason` MUST accompany terminated.
 */
export interface RlmiInstance { id: string; state: InstanceState; reason?: string; cid?: string }

/** A list member. No instance at all means its state is unknown (RFC 4662 §5.2). */
export interface RlmiResource { uri: string; names: { lang?: string; text: string }[]; instances: RlmiInstance[] }

export interface RlmiList {
  uri: string;
  /** Starts at 0 in each subscription and goes up by exactly 1 per NOTIFY (§5.2, §4.5). */
  version: number;
  fullState: boolean;
  names: { lang?: string; text: string }[];
  resources: RlmiResource[];
  /** Only for a nested list: the Content-ID of the part holding its own aggregated state (§5.2). */
  cid?: string;
}

/** Message like "Bad RLMI: ..."; safe as a SIP reason phrase (ASCII, no CR/LF, <= 100 chars). */
export class RlmiError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(toReasonPhrase(message), options);
    this.name = 'RlmiError';
  }
}

const bad = (what: string): RlmiError => new RlmiError(`Bad RLMI: ${what}`);

const XML_LANG = `{${NS.XML}}lang`;
const STATES: ReadonlySet<string> = new Set<InstanceState>(['active', 'pending', 'terminated']);
/** The schema types version as xs:unsignedInt (RFC 4662 §5.3). */
const MAX_VERSION = 0xffffffff;

/**
 * RLMI documents grow with the list (about three elements per member), so the defaults are
 * wider than parseXml's: a 10000-member full-state document fits.
 */
export const DEFAULT_RLMI_LIMITS: XmlLimits = Object.freeze({ maxBytes: 4 * 1024 * 1024, maxDepth: 16, maxElements: 50000 });

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

function checkInstances(res: RlmiResource): void {
  // Most resources have one instance: no set of ids to build for them.
  const ids = res.instances.length > 1 ? new Set<string>() : undefined;
  for (const inst of res.instances) {
    if (inst.id === '') throw bad(`instance without id in resource ${res.uri}`);
    // §5.2: the id identifies the instance within its resource.
    if (ids) {
      if (ids.has(inst.id)) throw bad(`duplicate instance id in resource ${res.uri}`);
      ids.add(inst.id);
    }
    if (!STATES.has(inst.state)) throw bad('instance state must be active, pending or terminated');
    if (inst.state === 'terminated' && (inst.reason === undefined || inst.reason === '')) {
      throw bad('a terminated instance needs a reason');
    }
    if (inst.state === 'active' && (inst.cid === undefined || inst.cid === '')) {
      throw bad('an active instance needs a cid');
    }
    // Herald only writes body parts for active instances, so a cid anywhere else would point
    // at a part that does not exist (§5.5 ties every cid to a top-level part).
    if (inst.state !== 'active' && inst.cid !== undefined) throw bad('only an active instance may carry a cid');
  }
}

/** `<name>` elements (RFC 4662 §5.3), written as serializeXml would write them. */
function nameElements(names: readonly { lang?: string; text: string }[]): string {
  let out = '';
  for (const n of names) {
    out += n.lang === undefined ? '<name' : `<name xml:lang="${escapeXml(n.lang, true)}"`;
    out += n.text === '' ? '/>' : `>${escapeXml(n.text, false)}</name>`;
  }
  return out;
}

/** One `<resource>` element with its names and instances, the instances checked (§5.2). */
export function renderRlmiResource(res: RlmiResource): string {
  if (res.uri === '') throw bad('resource without uri');
  checkInstances(res);
  let kids = nameElements(res.names);
  for (const inst of res.instances) {
    kids += `<instance id="${escapeXml(inst.id, true)}" state="${inst.state}"`;
    if (inst.reason !== undefined) kids += ` reason="${escapeXml(inst.reason, true)}"`;
    if (inst.cid !== undefined) kids += ` cid="${escapeXml(inst.cid, true)}"`;
    kids += '/>';
  }
  return kids === '' ? `<resource uri="${escapeXml(res.uri, true)}"/>` : `<resource uri="${escapeXml(res.uri, true)}">${kids}</resource>`;
}

/**
 * Serializes an RLMI document (UTF-8 declaration, RLMI as the default namespace, no indentation).
 * Written as a string directly rather than through serializeXml's tree: a list NOTIFY renders one
 * RLMI per NOTIFY with an element per member, and the document has one namespace and a fixed shape,
 * so the generic writer's namespace passes bought nothing; the output is the same bytes.
 */
export function renderRlmi(list: RlmiList): string {
  checkList(list);
  return renderRlmiOf(list, list.resources.map(renderRlmiResource));
}

function checkList(list: Omit<RlmiList, 'resources'>): void {
  if (list.uri === '') throw bad('list without uri');
  if (!Number.isSafeInteger(list.version) || list.version < 0 || list.version > MAX_VERSION) {
    throw bad('version must be an integer from 0 to 4294967295');
  }
}

/**
 * The same document from resources already written by renderRlmiResource (a list server writes each
 * member's element while it looks at the member, and keeps no resource objects for it).
 */
export function renderRlmiOf(list: Omit<RlmiList, 'resources'>, resources: readonly string[]): string {
  checkList(list);
  let head = `<?xml version="1.0" encoding="UTF-8"?><list xmlns="${NS.RLMI}" uri="${escapeXml(list.uri, true)}" version="${list.version}" fullState="${list.fullState ? 'true' : 'false'}"`;
  if (list.cid !== undefined) head += ` cid="${escapeXml(list.cid, true)}"`;
  let children = nameElements(list.names);
  for (const r of resources) children += r;
  return children === '' ? `${head}/>` : `${head}>${children}</list>`;
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

function parseNames(el: XmlElement): { lang?: string; text: string }[] {
  return childElements(el, NS.RLMI, 'name').map((n) => {
    const lang = n.attrs[XML_LANG];
    return lang === undefined ? { text: textOf(n) } : { lang, text: textOf(n) };
  });
}

/** xs:unsignedInt after whitespace collapsing: optional '+', digits only. */
function parseVersion(raw: string | undefined): number {
  if (raw === undefined) throw bad('list without version');
  const v = raw.trim();
  if (!/^\+?[0-9]{1,12}$/.test(v)) throw bad('version must be a non-negative integer');
  const n = Number(v);
  if (n > MAX_VERSION) throw bad('version out of range');
  return n;
}

/** xs:boolean: true, false, 1, 0. */
function parseBoolean(raw: string | undefined): boolean {
  if (raw === undefined) throw bad('list without fullState');
  switch (raw.trim()) {
    case 'true': case '1': return true;
    case 'false': case '0': return false;
    default: throw bad('fullState must be true or false');
  }
}

function parseInstance(el: XmlElement, resUri: string): RlmiInstance {
  const id = el.attrs['id'];
  if (id === undefined || id === '') throw bad(`instance without id in resource ${resUri}`);
  const state = el.attrs['state']?.trim();
  if (state === undefined || !STATES.has(state)) throw bad('instance state must be active, pending or terminated');
  const inst: RlmiInstance = { id, state: state as InstanceState };
  const reason = el.attrs['reason'];
  const cid = el.attrs['cid'];
  if (state === 'terminated' && (reason === undefined || reason.trim() === '')) throw bad('a terminated instance needs a reason');
  if (state === 'active' && (cid === undefined || cid.trim() === '')) throw bad('an active instance needs a cid');
  // Tolerated and kept: a reason on a pending instance (seen from RCS servers) and a cid on a
  // terminated one (seen from some IMS RLSs); neither breaks anything the RFC requires.
  if (reason !== undefined) inst.reason = reason.trim();
  if (cid !== undefined) inst.cid = cid.trim();
  return inst;
}

/**
 * Parses and checks an RLMI document: root {RLMI}list with uri, version (xs:unsignedInt) and
 * fullState (xs:boolean); each resource with a uri; each instance with an id unique within its
 * resource, a known state, a reason when terminated and a cid when active (RFC 4662 §5.2–5.3).
 * Elements from other namespaces are ignored (the schema allows them). XML failures come back
 * as RlmiError too, with the XmlError as `cause`.
 */
export function parseRlmi(xml: string, limits?: Partial<XmlLimits>): RlmiList {
  let root: XmlElement;
  try {
    root = parseXml(xml, { ...DEFAULT_RLMI_LIMITS, ...limits });
  } catch (e) {
    if (e instanceof XmlError) throw new RlmiError(`Bad RLMI: ${e.message}`, { cause: e });
    throw e;
  }
  if (root.ns !== NS.RLMI || root.name !== 'list') throw bad('root element must be rlmi:list');
  const uri = root.attrs['uri']?.trim();
  if (uri === undefined || uri === '') throw bad('list without uri');
  const list: RlmiList = {
    uri,
    version: parseVersion(root.attrs['version']),
    fullState: parseBoolean(root.attrs['fullState']),
    names: parseNames(root),
    resources: [],
  };
  const listCid = root.attrs['cid']?.trim();
  if (listCid !== undefined && listCid !== '') list.cid = listCid;
  for (const resEl of childElements(root, NS.RLMI, 'resource')) {
    const resUri = resEl.attrs['uri']?.trim();
    if (resUri === undefined || resUri === '') throw bad('resource without uri');
    const instances: RlmiInstance[] = [];
    const ids = new Set<string>();
    for (const instEl of childElements(resEl, NS.RLMI, 'instance')) {
      const inst = parseInstance(instEl, resUri);
      if (ids.has(inst.id)) throw bad(`duplicate instance id in resource ${resUri}`);
      ids.add(inst.id);
      instances.push(inst);
    }
    list.resources.push({ uri: resUri, names: parseNames(resEl), instances });
  }
  return list;
}
