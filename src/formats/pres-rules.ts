// RFC 5025 pres-rules documents: the presence usage of common policy (RFC 4745), its sub-handling
// action and its transformations (the permissions of §3.3), read into typed values. Parsing only;
// what a watcher may see by them is src/policy/pres-rules.ts.
//
// Everything is a positive grant (RFC 5025 §3, RFC 4745 §8): a permission that is absent, a
// transformation that is not understood, can only ever make a watcher see less.

import { NS, childElements, textOf, toReasonPhrase, type XmlElement, type XmlLimits } from './xml.js';
import { collapse, maxOf, mergeRuleSets as mergeCommon, parseBoolean, parseRuleset, type CommonRule, type CommonRuleSet } from './common-policy.js';

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

/** RFC 5025 §3.2.1 sub-handling values, in increasing order of permission. */
export type SubHandling = 'block' | 'confirm' | 'polite-block' | 'allow';

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
export interface PresRulesActions { subHandling?: SubHandling }

export type Rule = CommonRule<PresRulesActions, Transformations>;
export type RuleSet = CommonRuleSet<PresRulesActions, Transformations>;

export type BooleanKey =
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
export const BOOLEAN_KEYS: readonly BooleanKey[] = [...BOOLEAN_ELEMENTS.values()];

const EMPTY: readonly never[] = Object.freeze([]);

export const NO_TRANSFORMATIONS: Readonly<Transformations> = Object.freeze({
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

// RFC 5025 §3.2.1 and §3.3.2.12: enumerated integers, combined by maximum (RFC 4745 §10.2).
export const SUB_HANDLING_VALUE: Readonly<Record<SubHandling, number>> = { block: 0, confirm: 10, 'polite-block': 20, allow: 30 };
export const USER_INPUT_VALUE: Readonly<Record<UserInputLevel, number>> = { false: 0, bare: 10, thresholds: 20, full: 30 };

const isSubHandling = (v: string): v is SubHandling => Object.prototype.hasOwnProperty.call(SUB_HANDLING_VALUE, v);
const isUserInputLevel = (v: string): v is UserInputLevel => Object.prototype.hasOwnProperty.call(USER_INPUT_VALUE, v);

// ---------------------------------------------------------------------------------------------
// Combining (RFC 4745 §10.2 over the RFC 5025 values): a rule that names one element twice, and
// the rules that all apply to one watcher, combine the same way.
// ---------------------------------------------------------------------------------------------

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
export function combineTransformations(a: Transformations, b: Transformations): Transformations {
  const out: Transformations = {
    ...a,
    provideServices: unionGrants(a.provideServices, b.provideServices),
    providePersons: unionGrants(a.providePersons, b.providePersons),
    provideDevices: unionGrants(a.provideDevices, b.provideDevices),
    provideUserInput: maxOf(USER_INPUT_VALUE, a.provideUserInput, b.provideUserInput),
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

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

function parseActions(el: XmlElement): PresRulesActions {
  let subHandling: SubHandling | undefined;
  for (const c of childElements(el)) {
    if (c.ns !== PR || c.name !== 'sub-handling') continue; // RFC 4745 §6.2: other usages' actions are not ours
    const v = collapse(textOf(c));
    if (!isSubHandling(v)) throw bad('sub-handling must be block, confirm, polite-block or allow');
    subHandling = subHandling === undefined ? v : maxOf(SUB_HANDLING_VALUE, subHandling, v);
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
      part[flag] = parseBoolean(c, bad);
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
      if (parseBoolean(c, bad)) part.provideUnknownAttributes = [{ ns: collapse(ns), name }];
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
const READER = {
  fail: bad,
  actions: parseActions,
  noActions: (): PresRulesActions => ({}),
  transformations: parseTransformations,
  noTransformations: (): Transformations => ({ ...NO_TRANSFORMATIONS }),
};

/**
 * Parses one pres-rules document (RFC 5025 §7 over RFC 4745 §13). The bytes go through parseXml,
 * so DOCTYPE/entities, oversize and malformed input are refused before anything is interpreted.
 * Schema violations that change meaning are refused (PolicyError); unknown conditions are kept as
 * FALSE; unknown actions and transformations are dropped.
 */
export function parsePresRules(xml: string, limits?: Partial<XmlLimits>): RuleSet {
  return parseRuleset(xml, READER, limits);
}

/** All pres-rules documents of a user as one rule set (RFC 5025 §9.7). */
export function mergeRuleSets(sets: readonly RuleSet[]): RuleSet {
  return mergeCommon(sets);
}
