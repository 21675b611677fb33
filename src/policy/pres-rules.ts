// Presence authorization rules: RFC 4745 (common policy) with the RFC 5025 (pres-rules)
// conditions, actions and transformations, and the per-watcher privacy filter they drive.
//
// Three pure steps, no I/O and no clock (the time and the presentity's sphere come in):
//   parsePresRules  XML  -> RuleSet        (PolicyError for anything an XCAP server would 409)
//   evaluate        rules x watcher -> Permissions   (RFC 4745 §10 combining)
//   applyTransformations  document x Permissions -> what that watcher may see (RFC 5025 §3.3, §4)
//
// Everything is a positive grant (RFC 5025 §3, RFC 4745 §8): a permission that is absent, a rule
// that does not match, a condition or a presence attribute that is not understood, can only ever
// make a watcher see less. Every decision below that the RFCs leave open is taken in that direction
// and says so.

import { createHash } from 'node:crypto';
import {
  NS, XmlError, childElements, firstChild, parseXml, textOf, toReasonPhrase,
  type XmlElement, type XmlLimits, type XmlNode,
} from '../formats/xml.js';
import { closedDocument, type PidfDocument, type PidfTuple } from '../formats/pidf.js';
import { canonicalUri, domainsEqual, identityKey, schemeOf, uriEquivalent, type IdentityKey } from '../formats/uri.js';
import type { SubHandling } from './authorizer.js';

const CP = NS.COMMON_POLICY;
const PR = NS.PRES_RULES;

/** Any refusal of a pres-rules document. The message is ASCII, one line, at most 100 characters:
 *  usable as an XCAP 409 phrase or a log line. */
export class PolicyError extends Error {
  constructor(message: string) {
    super(toReasonPhrase(message));
    this.name = 'PolicyError';
  }
}

const bad = (what: string): PolicyError => new PolicyError(`Bad pres-rules: ${what}`);

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/**
 * The watcher as the front end authenticated it (RFC 5025 §3.1.1.1): the AOR bound to the digest
 * credentials, or a trusted asserted identity. Never a bare From header.
 * `anonymous` (or an empty `uri`) marks a watcher without an identity, e.g. digest user
 * "anonymous" (RFC 3261 p. 194), which RFC 5025 §3.1.1.1 does not count as authentication.
 * `otherUris`: further URIs asserted for the same watcher (a P-Asserted-Identity with both a sip:
 * and a tel: URI); RFC 5025 §3.1.1.2 matches <one>/<except> if any of them matches.
 */
export interface Identity { uri: string; anonymous?: boolean; otherUris?: readonly string[] }

export type IdentityChild =
  | { type: 'one'; id: string }
  | { type: 'many'; domain?: string; except: readonly ExceptClause[] }
  /** Something not understood (foreign namespace, or an extension inside <one>/<many>): FALSE. */
  | { type: 'unknown'; ns: string; name: string };

export type ExceptClause = { type: 'id'; value: string } | { type: 'domain'; value: string };

export interface ValidityInterval { from: number; until: number } // epoch milliseconds, [from, until)

export type Condition =
  /** OR over the children (RFC 4745 §7.1.1); no children matches only an anonymous watcher. */
  | { type: 'identity'; children: readonly IdentityChild[] }
  /** Tokens of the 'value' attribute, OR-ed (RFC 4745 §7.3). */
  | { type: 'sphere'; values: readonly string[] }
  | { type: 'validity'; intervals: readonly ValidityInterval[] }
  /** A condition not understood: always FALSE (RFC 4745 §7). */
  | { type: 'unknown'; ns: string; name: string };

/** All must hold (RFC 4745 §10.1); an empty list holds for everyone. */
export type Conditions = readonly Condition[];

export type UserInputLevel = 'false' | 'bare' | 'thresholds' | 'full';
export interface ServiceGrant { type: 'service-uri' | 'service-uri-scheme' | 'occurrence-id' | 'class'; value: string }
export interface PersonGrant { type: 'occurrence-id' | 'class'; value: string }
export interface DeviceGrant { type: 'deviceID' | 'occurrence-id' | 'class'; value: string }
/** A set permission (RFC 5025 §3.3.1): 'all' is <all-services/>, <all-persons/>, <all-devices/>. */
export type Grants<G> = 'all' | readonly G[];
export interface QName { ns: string; name: string }

/** The RFC 5025 §3.3 transformations of one rule, or combined. Absent = lowest value (RFC 4745 §10.2). */
export interface Transformations {
  provideServices: Grants<ServiceGrant>;
  providePersons: Grants<PersonGrant>;
  provideDevices: Grants<DeviceGrant>;
  provideActivities: boolean;
  provideClass: boolean;
  provideDeviceID: boolean;
  provideMood: boolean;
  providePlaceIs: boolean;
  providePlaceType: boolean;
  providePrivacy: boolean;
  provideRelationship: boolean;
  provideStatusIcon: boolean;
  provideSphere: boolean;
  provideTimeOffset: boolean;
  provideUserInput: UserInputLevel;
  provideNote: boolean;
  /** provide-unknown-attribute elements whose value is true. */
  provideUnknownAttributes: readonly QName[];
  provideAllAttributes: boolean;
}

export interface Permissions extends Transformations { subHandling: SubHandling }

export interface Rule {
  id: string;
  conditions: Conditions;
  actions: { subHandling?: SubHandling };
  transformations: Transformations;
}

export interface RuleSet { rules: Rule[] }

type BooleanKey =
  | 'provideActivities' | 'provideClass' | 'provideDeviceID' | 'provideMood' | 'providePlaceIs'
  | 'providePlaceType' | 'providePrivacy' | 'provideRelationship' | 'provideStatusIcon'
  | 'provideSphere' | 'provideTimeOffset' | 'provideNote';

/** RFC 5025 §7 boolean permission elements. A Map, so no element name can reach Object.prototype. */
const BOOLEAN_ELEMENTS: ReadonlyMap<string, BooleanKey> = new Map<string, BooleanKey>([
  ['provide-activities', 'provideActivities'],
  ['provide-class', 'provideClass'],
  ['provide-deviceID', 'provideDeviceID'],
  ['provide-mood', 'provideMood'],
  ['provide-place-is', 'providePlaceIs'],
  ['provide-place-type', 'providePlaceType'],
  ['provide-privacy', 'providePrivacy'],
  ['provide-relationship', 'provideRelationship'],
  ['provide-status-icon', 'provideStatusIcon'],
  ['provide-sphere', 'provideSphere'],
  ['provide-time-offset', 'provideTimeOffset'],
  ['provide-note', 'provideNote'],
]);
const BOOLEAN_KEYS: readonly BooleanKey[] = [...BOOLEAN_ELEMENTS.values()];

const EMPTY: readonly never[] = Object.freeze([]);

const NO_TRANSFORMATIONS: Readonly<Transformations> = Object.freeze({
  provideServices: EMPTY,
  providePersons: EMPTY,
  provideDevices: EMPTY,
  provideActivities: false,
  provideClass: false,
  provideDeviceID: false,
  provideMood: false,
  providePlaceIs: false,
  providePlaceType: false,
  providePrivacy: false,
  provideRelationship: false,
  provideStatusIcon: false,
  provideSphere: false,
  provideTimeOffset: false,
  provideUserInput: 'false',
  provideNote: false,
  provideUnknownAttributes: EMPTY,
  provideAllAttributes: false,
});

/** What a watcher gets when no rule matches: sub-handling block (RFC 5025 §3.2.1, value 0, "the
 *  default value") and every permission at its lowest value (RFC 4745 §10.2). */
export const BLOCK_ALL: Readonly<Permissions> = Object.freeze({ subHandling: 'block', ...NO_TRANSFORMATIONS });

// RFC 5025 §3.2.1 and §3.3.2.12: enumerated integers, combined by maximum (RFC 4745 §10.2).
const SUB_HANDLING_VALUE: Readonly<Record<SubHandling, number>> = { block: 0, confirm: 10, 'polite-block': 20, allow: 30 };
const USER_INPUT_VALUE: Readonly<Record<UserInputLevel, number>> = { false: 0, bare: 10, thresholds: 20, full: 30 };

const isSubHandling = (v: string): v is SubHandling => Object.prototype.hasOwnProperty.call(SUB_HANDLING_VALUE, v);
const isUserInputLevel = (v: string): v is UserInputLevel => Object.prototype.hasOwnProperty.call(USER_INPUT_VALUE, v);

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/** xs:token / xs:anyURI whitespace handling ("collapse"). */
function collapse(s: string): string {
  return s.replace(/[ \t\r\n]+/g, ' ').trim();
}

function isCp(el: XmlElement, name: string): boolean {
  return el.ns === CP && el.name === name;
}

/** xs:boolean: true, false, 1, 0. */
function parseBoolean(el: XmlElement): boolean {
  const v = collapse(textOf(el));
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw bad(`${el.name} must be true or false`);
}

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?$/;

/**
 * xs:dateTime to epoch milliseconds; undefined when not valid. A value without a time zone is
 * taken as UTC: XML Schema leaves such a value "local" and RFC 4745 §4 warns that rule makers
 * misjudge time zones; UTC is at least the same for every server of a cluster.
 */
function parseDateTime(text: string): number | undefined {
  const m = DATE_TIME.exec(collapse(text));
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const fraction = m[7] === undefined ? 0 : Math.floor(Number(`0${m[7]}`) * 1000);
  if (year < 1 || month < 1 || month > 12 || day < 1 || minute > 59 || second > 59) return undefined;
  // 24:00:00 is the end of the day (XML Schema 1.0 §3.2.7); any other 24:xx is not a time.
  if (hour > 24 || (hour === 24 && (minute !== 0 || second !== 0 || fraction !== 0))) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day); // setUTCFullYear, so years below 100 stay themselves
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return undefined; // 31 April
  date.setUTCHours(hour, minute, second, fraction);
  let offset = 0;
  const tz = m[8];
  if (tz !== undefined && tz !== 'Z') {
    const h = Number(tz.slice(1, 3));
    const min = Number(tz.slice(4, 6));
    if (h > 14 || min > 59) return undefined;
    offset = (tz[0] === '-' ? -1 : 1) * (h * 60 + min) * 60000;
  }
  return date.getTime() - offset;
}

function parseIdentity(el: XmlElement): Condition {
  const children: IdentityChild[] = [];
  for (const c of childElements(el)) {
    if (isCp(c, 'one')) {
      const id = c.attrs['id'];
      if (id === undefined || collapse(id) === '') throw bad('<one> without id');
      // oneType admits ##other children (RFC 4745 §13). One we cannot read might narrow the match,
      // so the whole <one> is taken as not understood: FALSE, never broader than meant.
      children.push(childElements(c).length > 0 ? { type: 'unknown', ns: c.ns, name: c.name } : { type: 'one', id: collapse(id) });
    } else if (isCp(c, 'many')) {
      const except: ExceptClause[] = [];
      let understood = true;
      for (const e of childElements(c)) {
        if (!isCp(e, 'except')) { understood = false; continue; } // same reasoning as for <one>
        const id = e.attrs['id'];
        const domain = e.attrs['domain'];
        // RFC 4745 §7.2: a single-user entity (this <except id>) MUST NOT carry a domain; an
        // <except> with neither excludes nothing anyone could name.
        if ((id === undefined) === (domain === undefined)) throw bad('<except> needs exactly one of id and domain');
        except.push(id !== undefined ? { type: 'id', value: collapse(id) } : { type: 'domain', value: collapse(domain as string) });
      }
      const domain = c.attrs['domain'];
      if (!understood) children.push({ type: 'unknown', ns: c.ns, name: c.name });
      else children.push(domain === undefined ? { type: 'many', except } : { type: 'many', domain: collapse(domain), except });
    } else {
      // RFC 4745 §7.1.1: a child in a namespace not known or not supported evaluates to FALSE.
      children.push({ type: 'unknown', ns: c.ns, name: c.name });
    }
  }
  return { type: 'identity', children };
}

function parseValidity(el: XmlElement): Condition {
  // RFC 4745 §7.4 and §13: <from>/<until> in pairs, at least one pair, nothing else.
  const kids = childElements(el);
  if (kids.length === 0 || kids.length % 2 !== 0) throw bad('<validity> needs <from>/<until> pairs');
  const intervals: ValidityInterval[] = [];
  for (let i = 0; i < kids.length; i += 2) {
    const f = kids[i] as XmlElement;
    const u = kids[i + 1] as XmlElement;
    if (!isCp(f, 'from') || !isCp(u, 'until')) throw bad('<validity> needs <from>/<until> pairs');
    const from = parseDateTime(textOf(f));
    const until = parseDateTime(textOf(u));
    if (from === undefined || until === undefined) throw bad('<validity> time is not an xs:dateTime');
    intervals.push({ from, until });
  }
  return { type: 'validity', intervals };
}

function parseConditions(el: XmlElement): Condition[] {
  const out: Condition[] = [];
  for (const c of childElements(el)) {
    if (isCp(c, 'identity')) out.push(parseIdentity(c));
    else if (isCp(c, 'sphere')) {
      const value = c.attrs['value'];
      if (value === undefined) throw bad('<sphere> without value');
      out.push({ type: 'sphere', values: value.split(/[ \t\r\n]+/).filter((v) => v !== '') });
    } else if (isCp(c, 'validity')) out.push(parseValidity(c));
    // RFC 4745 §7: a condition in a namespace not known or not supported evaluates to FALSE, so
    // the rule never fires. It is kept (not dropped) precisely so that it can say FALSE.
    else out.push({ type: 'unknown', ns: c.ns, name: c.name });
  }
  return out;
}

function parseActions(el: XmlElement): Rule['actions'] {
  let subHandling: SubHandling | undefined;
  for (const c of childElements(el)) {
    if (c.ns !== PR || c.name !== 'sub-handling') continue; // RFC 4745 §6.2: other usages' actions are not ours
    const v = collapse(textOf(c));
    if (!isSubHandling(v)) throw bad('sub-handling must be block, confirm, polite-block or allow');
    if (subHandling === undefined || SUB_HANDLING_VALUE[v] > SUB_HANDLING_VALUE[subHandling]) subHandling = v;
  }
  return subHandling === undefined ? {} : { subHandling };
}

function parseGrants<T extends string>(el: XmlElement, allName: string, types: readonly T[]): Grants<{ type: T; value: string }> {
  const kids = childElements(el);
  // RFC 5025 §7: <all-…> is a choice against the list, never next to it.
  if (kids.some((k) => k.ns === PR && k.name === allName)) {
    if (kids.length !== 1) throw bad(`<${allName}> must stand alone in <${el.name}>`);
    return 'all';
  }
  const out: { type: T; value: string }[] = [];
  for (const k of kids) {
    const type = types.find((t) => t === k.name);
    if (k.ns === PR && type !== undefined) out.push({ type, value: collapse(textOf(k)) });
    else if (k.ns === PR) throw bad(`unexpected <${k.name}> in <${el.name}>`);
    // ##other members (RFC 5025 §7) identify components in ways we do not know: they grant nothing.
  }
  return out;
}

const NCNAME = /^[\p{L}_][\p{L}\p{N}\p{M}_.\-\u00B7]*$/u;

function parseTransformations(el: XmlElement): Transformations {
  let t: Transformations = { ...NO_TRANSFORMATIONS };
  for (const c of childElements(el)) {
    // Unknown transformations are ignored: they could only have granted more (RFC 5025 §8).
    if (c.ns !== PR) continue;
    const part: Partial<Transformations> = {};
    const flag = BOOLEAN_ELEMENTS.get(c.name);
    if (flag !== undefined) {
      part[flag] = parseBoolean(c);
    } else if (c.name === 'provide-services') {
      part.provideServices = parseGrants(c, 'all-services', ['service-uri', 'service-uri-scheme', 'occurrence-id', 'class'] as const);
    } else if (c.name === 'provide-persons') {
      part.providePersons = parseGrants(c, 'all-persons', ['occurrence-id', 'class'] as const);
    } else if (c.name === 'provide-devices') {
      part.provideDevices = parseGrants(c, 'all-devices', ['deviceID', 'occurrence-id', 'class'] as const);
    } else if (c.name === 'provide-user-input') {
      const v = collapse(textOf(c));
      if (!isUserInputLevel(v)) throw bad('provide-user-input must be false, bare, thresholds or full');
      part.provideUserInput = v;
    } else if (c.name === 'provide-unknown-attribute') {
      const ns = c.attrs['ns'];
      const name = c.attrs['name'];
      if (ns === undefined || name === undefined) throw bad('provide-unknown-attribute needs ns and name');
      // RFC 5025 §3.3.2.14: name MUST be unqualified (no prefix), ns a namespace URI.
      if (!NCNAME.test(name)) throw bad('provide-unknown-attribute name must be an unprefixed element name');
      if (parseBoolean(c)) part.provideUnknownAttributes = [{ ns: collapse(ns), name }];
    } else if (c.name === 'provide-all-attributes') {
      part.provideAllAttributes = true;
    } else {
      continue;
    }
    // The same element twice in one rule is read as two grants and combined like two rules.
    t = combineTransformations(t, { ...NO_TRANSFORMATIONS, ...part });
  }
  return t;
}

function parseRule(el: XmlElement): Rule {
  const id = el.attrs['id'];
  if (id === undefined || collapse(id) === '') throw bad('rule without id');
  let conditions: Condition[] | undefined;
  let actions: Rule['actions'] | undefined;
  let transformations: Transformations | undefined;
  for (const c of childElements(el)) {
    // RFC 4745 §13 ruleType: conditions?, actions?, transformations?, nothing else.
    if (isCp(c, 'conditions') && conditions === undefined) conditions = parseConditions(c);
    else if (isCp(c, 'actions') && actions === undefined) actions = parseActions(c);
    else if (isCp(c, 'transformations') && transformations === undefined) transformations = parseTransformations(c);
    else throw bad(`unexpected <${c.name}> in rule`);
  }
  // No <conditions> at all is the empty conjunction: the rule applies to every request.
  return { id: collapse(id), conditions: conditions ?? [], actions: actions ?? {}, transformations: transformations ?? { ...NO_TRANSFORMATIONS } };
}

/**
 * Parses one pres-rules document (RFC 5025 §7 over RFC 4745 §13). The bytes go through parseXml,
 * so DOCTYPE/entities, oversize and malformed input are refused before anything is interpreted.
 * Schema violations that change meaning are refused (PolicyError); unknown conditions are kept as
 * FALSE; unknown actions and transformations are dropped.
 */
export function parsePresRules(xml: string, limits?: Partial<XmlLimits>): RuleSet {
  let root: XmlElement;
  try {
    root = parseXml(xml, limits);
  } catch (e) {
    if (e instanceof XmlError) throw bad(e.message);
    throw e;
  }
  if (!isCp(root, 'ruleset')) throw bad('root element is not a common-policy ruleset');
  const rules: Rule[] = [];
  const ids = new Set<string>();
  for (const el of childElements(root)) {
    if (!isCp(el, 'rule')) throw bad(`unexpected <${el.name}> in ruleset`);
    const rule = parseRule(el);
    // RFC 4745 §6.1: a rule maker MUST NOT use one id for two rules (xs:ID).
    if (ids.has(rule.id)) throw bad('duplicate rule id');
    ids.add(rule.id);
    rules.push(rule);
  }
  return { rules };
}

/**
 * All documents of a user apply together (RFC 5025 §9.7): their rules form one rule set. Rule ids
 * are unique only within a document (RFC 4745 §6.1); evaluation never looks at them.
 */
export function mergeRuleSets(sets: readonly RuleSet[]): RuleSet {
  return { rules: sets.flatMap((s) => s.rules) };
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

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

function unionGrants<G extends { type: string; value: string }>(a: Grants<G>, b: Grants<G>): Grants<G> {
  if (a === 'all' || b === 'all') return 'all'; // the all-… value covers every member
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const seen = new Set(a.map((g) => `${g.type}\u0000${g.value}`));
  const out = [...a];
  for (const g of b) {
    const k = `${g.type}\u0000${g.value}`;
    if (!seen.has(k)) { seen.add(k); out.push(g); }
  }
  return out;
}

/** RFC 4745 §10.2, permission by permission: booleans OR, integers max, sets union. */
function combineTransformations(a: Transformations, b: Transformations): Transformations {
  const out: Transformations = {
    ...a,
    provideServices: unionGrants(a.provideServices, b.provideServices),
    providePersons: unionGrants(a.providePersons, b.providePersons),
    provideDevices: unionGrants(a.provideDevices, b.provideDevices),
    provideUserInput: USER_INPUT_VALUE[b.provideUserInput] > USER_INPUT_VALUE[a.provideUserInput] ? b.provideUserInput : a.provideUserInput,
    provideAllAttributes: a.provideAllAttributes || b.provideAllAttributes,
  };
  for (const k of BOOLEAN_KEYS) out[k] = a[k] || b[k];
  if (b.provideUnknownAttributes.length > 0) {
    const seen = new Set(a.provideUnknownAttributes.map((q) => `{${q.ns}}${q.name}`));
    const merged = [...a.provideUnknownAttributes];
    for (const q of b.provideUnknownAttributes) {
      const k = `{${q.ns}}${q.name}`;
      if (!seen.has(k)) { seen.add(k); merged.push(q); }
    }
    out.provideUnknownAttributes = merged;
  }
  return out;
}

/**
 * The combined permissions of every rule whose conditions all hold (RFC 4745 §10). With no
 * matching rule the result is BLOCK_ALL. `now` and `sphere` (the presentity's current sphere,
 * computed from all its publications per RFC 5025 §3.1.2; undefined when unknown or
 * inconsistent) come from the caller: this function reads no clock.
 */
export function evaluate(rules: RuleSet, watcher: Identity, now: Date, sphere?: string): Permissions {
  const ids = watcherUris(watcher);
  const t = now.getTime(); // NaN for an invalid Date: every validity condition is then FALSE
  let subHandling: SubHandling = 'block';
  let acc: Transformations = NO_TRANSFORMATIONS;
  let matched = false;
  for (const rule of rules.rules) {
    if (!rule.conditions.every((c) => conditionHolds(c, ids, t, sphere))) continue;
    matched = true;
    // RFC 5025 §3.2.1: the maximum; a rule's block never lowers another rule's allow.
    const s = rule.actions.subHandling;
    if (s !== undefined && SUB_HANDLING_VALUE[s] > SUB_HANDLING_VALUE[subHandling]) subHandling = s;
    acc = combineTransformations(acc, rule.transformations);
  }
  return matched ? { subHandling, ...acc } : BLOCK_ALL;
}

// ---------------------------------------------------------------------------------------------
// The privacy filter
// ---------------------------------------------------------------------------------------------

type Known = BooleanKey | 'provideUserInput' | 'always';
type Ctx = 'tuple' | 'status' | 'person' | 'device' | 'top';

/** RFC 4480 elements and the RFC 5025 §3.3.2 permission that governs each. */
const RPID_ATTRIBUTES: ReadonlyMap<string, Known> = new Map<string, Known>([
  ['activities', 'provideActivities'],
  ['class', 'provideClass'],
  ['mood', 'provideMood'],
  ['place-is', 'providePlaceIs'],
  ['place-type', 'providePlaceType'],
  ['privacy', 'providePrivacy'],
  ['relationship', 'provideRelationship'],
  ['service-class', 'always'], // RFC 5025 §3.3.2: always reported in tuples
  ['sphere', 'provideSphere'],
  ['status-icon', 'provideStatusIcon'],
  ['time-offset', 'provideTimeOffset'],
  ['user-input', 'provideUserInput'],
]);

/** Which permission governs a child of a tuple/status/person/device, or undefined for an unknown
 *  attribute (RFC 5025 §3.3.2.14: one no authorization policy is defined for). */
function knownAttribute(el: XmlElement, ctx: Ctx): Known | undefined {
  if (el.ns === NS.RPID) return RPID_ATTRIBUTES.get(el.name);
  if (el.ns === NS.DM) {
    if (el.name === 'note') return 'provideNote';
    if (el.name === 'timestamp') return 'always'; // RFC 5025 §3.3.2: person/device timestamps
    // RFC 5025 §3.3.2.3: a device's own deviceID is always included; the one in a tuple is not.
    if (el.name === 'deviceID') return ctx === 'device' ? 'always' : 'provideDeviceID';
    return undefined;
  }
  if (el.ns === NS.PIDF) {
    // RFC 5025 §3.3.2.13: the PIDF note of a tuple (RFC 3863) like the dm:note of person/device.
    if (el.name === 'note') return 'provideNote';
    // RFC 5025 §3.3.2: contact, basic status and timestamp of a tuple are always reported.
    if (ctx === 'tuple' && (el.name === 'status' || el.name === 'contact' || el.name === 'timestamp')) return 'always';
    if (ctx === 'status' && el.name === 'basic') return 'always';
  }
  return undefined;
}

interface View {
  all: boolean;
  flags: Readonly<Record<BooleanKey, boolean>>;
  userInput: UserInputLevel;
  unknown: ReadonlySet<string>;
}

function viewOf(p: Permissions): View {
  const flags = {} as Record<BooleanKey, boolean>;
  for (const k of BOOLEAN_KEYS) flags[k] = p[k];
  return {
    all: p.provideAllAttributes,
    flags,
    userInput: p.provideUserInput,
    unknown: new Set(p.provideUnknownAttributes.map((q) => `{${q.ns}}${q.name}`)),
  };
}

/** RFC 5025 §3.3.2.12. RFC 5025 calls the time attribute "since"; RPID (RFC 4480) names it
 *  "last-input". Both are treated as that attribute. */
function userInput(el: XmlElement, level: UserInputLevel): XmlElement | undefined {
  if (level === 'false') return undefined;
  if (level === 'full') return el;
  const attrs = { ...el.attrs };
  delete attrs['last-input'];
  delete attrs['since'];
  if (level === 'bare') delete attrs['idle-threshold'];
  return { ns: el.ns, name: el.name, attrs, children: el.children };
}

/**
 * One child of a kept component: kept verbatim, transformed (user-input, tuple status) or dropped.
 * Content inside a kept attribute is never filtered further: a note inside <activities> is part
 * of the activities (RFC 5025 §3.3.2.13).
 * `grantedClasses`: the <class> values this watcher was granted for this kind of component.
 */
function filterChild(el: XmlElement, ctx: Ctx, v: View, grantedClasses: ReadonlySet<string>): XmlElement | undefined {
  // What RFC 5025 §3.3.2 always reports, it reports inside tuples, persons and devices; the same
  // element loose at the top of the document is granted like an unknown attribute.
  const known = ctx === 'top' && knownAttribute(el, ctx) === 'always' ? undefined : knownAttribute(el, ctx);
  if (known === 'always') {
    return ctx === 'tuple' && el.ns === NS.PIDF && el.name === 'status' ? filterComponent(el, 'status', v, grantedClasses) : el;
  }
  // RFC 5025 §3.3.2.15: a macro for every attribute permission, including unknown ones.
  if (v.all) return el;
  if (known === undefined) {
    // RFC 5025 §3.3.2.14: an unknown attribute needs its own grant. The grant is only consulted
    // for unknown qualified names, so one naming an RPID element changes nothing.
    return v.unknown.has(`{${el.ns}}${el.name}`) ? el : undefined;
  }
  if (known === 'provideUserInput') return userInput(el, v.userInput);
  if (known === 'provideClass') {
    // A component admitted by a <class> grant keeps the <class> that admitted it even without
    // provide-class: otherwise the filtered document would lose what selected the component and
    // a second pass would drop it, violating D = F(D) (RFC 5025 §4). The value disclosed is one
    // the rule maker wrote into this watcher's grant.
    return v.flags.provideClass || grantedClasses.has(collapse(textOf(el))) ? el : undefined;
  }
  return v.flags[known] ? el : undefined;
}

function filterComponent(el: XmlElement, ctx: Ctx, v: View, grantedClasses: ReadonlySet<string>): XmlElement {
  const children: XmlNode[] = [];
  for (const c of el.children) {
    if (typeof c === 'string') { children.push(c); continue; }
    const kept = filterChild(c, ctx, v, grantedClasses);
    if (kept !== undefined) children.push(kept);
  }
  return { ns: el.ns, name: el.name, attrs: { ...el.attrs }, children };
}

function classesOf(el: XmlElement): string[] {
  return childElements(el, NS.RPID, 'class').map((c) => collapse(textOf(c)));
}

function grantedClassSet(g: Grants<{ type: string; value: string }>): ReadonlySet<string> {
  return new Set(g === 'all' ? [] : g.filter((x) => x.type === 'class').map((x) => x.value));
}

/** RFC 5025 §3.3.1.3. The service URI of a tuple is its <contact> (RFC 4479 §3.1.2), its
 *  occurrence ID the tuple id. */
function serviceSelected(t: XmlElement, g: Grants<ServiceGrant>): boolean {
  if (g === 'all') return true;
  if (g.length === 0) return false;
  const id = t.attrs['id'];
  const contactEl = firstChild(t, NS.PIDF, 'contact');
  const contact = contactEl === undefined ? undefined : collapse(textOf(contactEl));
  const classes = classesOf(t);
  return g.some((x) => {
    switch (x.type) {
      case 'occurrence-id': return id === x.value;
      case 'class': return classes.includes(x.value);
      case 'service-uri': return contact !== undefined && contact !== '' && uriEquivalent(contact, x.value);
      // "case-sensitive equality" (RFC 5025 §3.3.1.3) against the contact's scheme in its
      // canonical lower case: a contact written SIP: still matches a grant for "sip".
      case 'service-uri-scheme': return contact !== undefined && schemeOf(contact) === x.value;
      default: return false;
    }
  });
}

/** RFC 5025 §3.3.1.2. */
function personSelected(p: XmlElement, g: Grants<PersonGrant>): boolean {
  if (g === 'all') return true;
  if (g.length === 0) return false;
  const classes = classesOf(p);
  return g.some((x) => (x.type === 'occurrence-id' ? p.attrs['id'] === x.value : x.type === 'class' && classes.includes(x.value)));
}

/** RFC 5025 §3.3.1.1. */
function deviceSelected(d: XmlElement, g: Grants<DeviceGrant>): boolean {
  if (g === 'all') return true;
  if (g.length === 0) return false;
  const classes = classesOf(d);
  const ids = childElements(d, NS.DM, 'deviceID').map((e) => collapse(textOf(e)));
  return g.some((x) => {
    switch (x.type) {
      case 'occurrence-id': return d.attrs['id'] === x.value;
      case 'class': return classes.includes(x.value);
      case 'deviceID': return ids.some((i) => uriEquivalent(i, x.value));
      default: return false;
    }
  });
}

const QVALUE = /^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$/;

/** The PidfTuple facts read back from a (filtered) element, as parsePidf would read them, so that
 *  facts and element never disagree. */
function tupleOf(el: XmlElement, fallbackId: string): PidfTuple {
  const status = firstChild(el, NS.PIDF, 'status');
  const basicEl = status === undefined ? undefined : firstChild(status, NS.PIDF, 'basic');
  const b = basicEl === undefined ? undefined : textOf(basicEl);
  const contactEl = firstChild(el, NS.PIDF, 'contact');
  const c = contactEl === undefined ? '' : textOf(contactEl);
  const p = contactEl?.attrs['priority']?.trim();
  const tsEl = firstChild(el, NS.PIDF, 'timestamp');
  const ts = tsEl === undefined ? '' : textOf(tsEl);
  return {
    id: el.attrs['id'] ?? fallbackId,
    basic: b === 'open' || b === 'closed' ? b : undefined,
    contact: c === '' ? undefined : c,
    priority: p !== undefined && QVALUE.test(p) ? Number(p) : undefined,
    timestamp: ts === '' ? undefined : ts,
    element: el,
  };
}

/**
 * What the watcher with these permissions may see of `doc` (RFC 5025 §3.3 and §4):
 *   * allow: tuples, persons and devices only as granted by provide-services/-persons/-devices;
 *     inside each, only the attributes granted, plus what is always reported (tuple contact,
 *     basic status, timestamp, service-class; person and device timestamps; a device's deviceID).
 *     Attributes of namespaces no permission covers need provide-unknown-attribute or
 *     provide-all-attributes. Top-level <note>s follow provide-note; top-level extension elements
 *     are treated like unknown attributes. (RFC 5025 names neither; both choices can only hide.)
 *   * polite-block: a single closed service and nothing else (RFC 5025 §3.2.1): the same document
 *     as a presentity that never published, so the watcher cannot tell the two apart.
 *   * block, confirm: no document is to be sent at all (RFC 5025 §3.2.1); if one is asked for
 *     anyway, it holds nothing but the entity.
 * The result keeps the entity, is idempotent (F(F(D)) = F(D), RFC 5025 §4), never modifies its
 * input, and shares unmodified subtrees with it (treat both as immutable).
 */
export function applyTransformations(doc: PidfDocument, p: Permissions): PidfDocument {
  if (p.subHandling === 'polite-block') return closedDocument(doc.entity);
  if (p.subHandling !== 'allow') return { entity: doc.entity, tuples: [], persons: [], devices: [], notes: [], extensions: [] };
  const v = viewOf(p);
  const serviceClasses = grantedClassSet(p.provideServices);
  const personClasses = grantedClassSet(p.providePersons);
  const deviceClasses = grantedClassSet(p.provideDevices);
  const none: ReadonlySet<string> = new Set();
  return {
    entity: doc.entity,
    tuples: doc.tuples
      .filter((t) => serviceSelected(t.element, p.provideServices))
      .map((t) => tupleOf(filterComponent(t.element, 'tuple', v, serviceClasses), t.id)),
    persons: doc.persons.filter((e) => personSelected(e, p.providePersons)).map((e) => filterComponent(e, 'person', v, personClasses)),
    devices: doc.devices.filter((e) => deviceSelected(e, p.provideDevices)).map((e) => filterComponent(e, 'device', v, deviceClasses)),
    notes: v.all || v.flags.provideNote ? [...doc.notes] : [],
    extensions: doc.extensions.flatMap((e) => {
      const kept = filterChild(e, 'top', v, none);
      return kept === undefined ? [] : [kept];
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// View keys
// ---------------------------------------------------------------------------------------------

function grantKeys(g: Grants<{ type: string; value: string }>): string[] | 'all' {
  if (g === 'all') return 'all';
  // URI-valued grants by their canonical form, so equivalent spellings share a view.
  const keys = g.map((x) => {
    const isUri = x.type === 'service-uri' || x.type === 'deviceID';
    return `${x.type}\u0000${isUri ? canonicalUri(x.value, { withHeaders: true }) ?? '\u0001' : x.value}`;
  });
  return [...new Set(keys)].sort();
}

/**
 * A short stable key: watchers with equal keys get identical transformation results for any
 * document, so one body per distinct key is enough. It is built from exactly what
 * applyTransformations reads, normalized (sets sorted and deduplicated, URI grants canonical,
 * the individual attribute permissions folded into provide-all-attributes when that is set), then
 * hashed. block and confirm share 'none' (no document); polite-block is 'polite-block'.
 */
export function viewKey(p: Permissions): string {
  if (p.subHandling === 'polite-block') return 'polite-block';
  if (p.subHandling !== 'allow') return 'none';
  const all = p.provideAllAttributes;
  const normalized = {
    services: grantKeys(p.provideServices),
    persons: grantKeys(p.providePersons),
    devices: grantKeys(p.provideDevices),
    all,
    flags: all ? [] : BOOLEAN_KEYS.filter((k) => p[k]),
    userInput: all ? 'full' : p.provideUserInput,
    unknown: all ? [] : [...new Set(p.provideUnknownAttributes.map((q) => `{${q.ns}}${q.name}`))].sort(),
  };
  const digest = createHash('sha256').update(JSON.stringify(normalized)).digest('base64url');
  return `allow:${digest.slice(0, 22)}`;
}
