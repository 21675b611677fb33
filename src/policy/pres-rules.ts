// Presence authorization by pres-rules (RFC 5025 on RFC 4745), and the per-watcher privacy filter.
//
// Two pure steps, no I/O and no clock (the time and the presentity's sphere come in); the
// document is parsed by src/formats/pres-rules.ts:
//   evaluate              rules x watcher -> Permissions   (RFC 4745 §10 combining)
//   applyTransformations  document x Permissions -> what that watcher may see (RFC 5025 §3.3, §4)
//
// Everything is a positive grant (RFC 5025 §3, RFC 4745 §8): a permission that is absent, a rule
// that does not match, a condition or a presence attribute that is not understood, can only ever
// make a watcher see less. Every decision below that the RFCs leave open is taken in that direction
// and says so.

import { createHash } from 'node:crypto';
import { NS, childElements, firstChild, textOf, type XmlElement, type XmlNode } from '../formats/xml.js';
import { closedDocument, type PidfDocument, type PidfTuple } from '../formats/pidf.js';
import { collapse, maxOf } from '../formats/common-policy.js';
import {
  BOOLEAN_KEYS, NO_TRANSFORMATIONS, SUB_HANDLING_VALUE, combineTransformations,
  type BooleanKey, type DeviceGrant, type Grants, type PersonGrant, type RuleSet, type ServiceGrant, type SubHandling,
  type Transformations, type UserInputLevel,
} from '../formats/pres-rules.js';
import { canonicalUri, schemeOf, uriEquivalent } from '../formats/uri.js';
import { matchingRules, type Identity } from './common-policy.js';

export interface Permissions extends Transformations { subHandling: SubHandling }

/** What a watcher gets when no rule matches: sub-handling block (RFC 5025 §3.2.1, value 0, "the
 *  default value") and every permission at its lowest value (RFC 4745 §10.2). */
export const BLOCK_ALL: Readonly<Permissions> = Object.freeze({ subHandling: 'block', ...NO_TRANSFORMATIONS });

/**
 * The combined permissions of every rule whose conditions all hold (RFC 4745 §10). With no
 * matching rule the result is BLOCK_ALL. `now` and `sphere` (the presentity's current sphere,
 * computed from all its publications per RFC 5025 §3.1.2; undefined when unknown or
 * inconsistent) come from the caller: this function reads no clock.
 */
export function evaluate(rules: RuleSet, watcher: Identity, now: Date, sphere?: string): Permissions {
  const matched = matchingRules(rules.rules, watcher, now, sphere);
  if (matched.length === 0) return BLOCK_ALL;
  let subHandling: SubHandling = 'block';
  let acc: Transformations = NO_TRANSFORMATIONS;
  for (const rule of matched) {
    // RFC 5025 §3.2.1: the maximum; a rule's block never lowers another rule's allow.
    subHandling = maxOf(SUB_HANDLING_VALUE, subHandling, rule.actions.subHandling);
    acc = combineTransformations(acc, rule.transformations);
  }
  return { subHandling, ...acc };
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
