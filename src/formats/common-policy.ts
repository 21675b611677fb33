// RFC 4745 common-policy documents: a ruleset of rules, each with conditions (identity, sphere,
// validity), actions and transformations. The conditions are RFC 4745's own and parsed here; actions
// and transformations belong to the usage (pres-rules, RFC 5025; IM rules), whose reader parses them.
// Pure: no I/O. Evaluation (which rules apply to whom, and now) is src/policy/common-policy.ts.

import { NS, XmlError, childElements, parseXml, textOf, type XmlElement, type XmlLimits } from './xml.js';

const CP = NS.COMMON_POLICY;

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

/** One rule of a usage whose actions are A and transformations T. */
export interface CommonRule<A, T> {
  id: string;
  conditions: Conditions;
  actions: A;
  transformations: T;
}

export interface CommonRuleSet<A, T> { rules: CommonRule<A, T>[] }

/** What a usage contributes to parsing its ruleset. `fail` builds the usage's error for a message. */
export interface UsageReader<A, T> {
  fail: (what: string) => Error;
  /** Reads <actions>; absent: `noActions`. */
  actions: (el: XmlElement) => A;
  noActions: () => A;
  /** Reads <transformations>; absent: `noTransformations`. */
  transformations: (el: XmlElement) => T;
  noTransformations: () => T;
}

/** RFC 4745 §10.2: permissions of enumerated integer values combine by maximum. */
export function maxOf<V extends string>(order: Readonly<Record<V, number>>, a: V, b: V | undefined): V {
  return b !== undefined && order[b] > order[a] ? b : a;
}

/** xs:token / xs:anyURI whitespace handling ("collapse"). */
export function collapse(s: string): string {
  return s.replace(/[ \t\r\n]+/g, ' ').trim();
}

export function isCp(el: XmlElement, name: string): boolean {
  return el.ns === CP && el.name === name;
}

/** xs:boolean: true, false, 1, 0. */
export function parseBoolean(el: XmlElement, fail: (what: string) => Error): boolean {
  const v = collapse(textOf(el));
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw fail(`${el.name} must be true or false`);
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

function parseIdentity(el: XmlElement, bad: (what: string) => Error): Condition {
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

function parseValidity(el: XmlElement, bad: (what: string) => Error): Condition {
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

function parseConditions(el: XmlElement, bad: (what: string) => Error): Condition[] {
  const out: Condition[] = [];
  for (const c of childElements(el)) {
    if (isCp(c, 'identity')) out.push(parseIdentity(c, bad));
    else if (isCp(c, 'sphere')) {
      const value = c.attrs['value'];
      if (value === undefined) throw bad('<sphere> without value');
      out.push({ type: 'sphere', values: value.split(/[ \t\r\n]+/).filter((v) => v !== '') });
    } else if (isCp(c, 'validity')) out.push(parseValidity(c, bad));
    // RFC 4745 §7: a condition in a namespace not known or not supported evaluates to FALSE, so
    // the rule never fires. It is kept (not dropped) precisely so that it can say FALSE.
    else out.push({ type: 'unknown', ns: c.ns, name: c.name });
  }
  return out;
}

function parseRule<A, T>(el: XmlElement, reader: UsageReader<A, T>): CommonRule<A, T> {
  const bad = reader.fail;
  const id = el.attrs['id'];
  if (id === undefined || collapse(id) === '') throw bad('rule without id');
  let conditions: Condition[] | undefined;
  let actions: A | undefined;
  let transformations: T | undefined;
  for (const c of childElements(el)) {
    // RFC 4745 §13 ruleType: conditions?, actions?, transformations?, nothing else.
    if (isCp(c, 'conditions') && conditions === undefined) conditions = parseConditions(c, bad);
    else if (isCp(c, 'actions') && actions === undefined) actions = reader.actions(c);
    else if (isCp(c, 'transformations') && transformations === undefined) transformations = reader.transformations(c);
    else throw bad(`unexpected <${c.name}> in rule`);
  }
  // No <conditions> at all is the empty conjunction: the rule applies to every request.
  return { id: collapse(id), conditions: conditions ?? [], actions: actions ?? reader.noActions(), transformations: transformations ?? reader.noTransformations() };
}

/**
 * Parses one common-policy document (RFC 4745 §13) of a usage. The bytes go through parseXml, so
 * DOCTYPE/entities, oversize and malformed input are refused before anything is interpreted.
 * Schema violations that change meaning are refused (reader.fail); unknown conditions are kept as
 * FALSE; what the reader does with unknown actions and transformations is the usage's choice.
 */
export function parseRuleset<A, T>(xml: string, reader: UsageReader<A, T>, limits?: Partial<XmlLimits>): CommonRuleSet<A, T> {
  const bad = reader.fail;
  let root: XmlElement;
  try {
    root = parseXml(xml, limits);
  } catch (e) {
    if (e instanceof XmlError) throw bad(e.message);
    throw e;
  }
  if (!isCp(root, 'ruleset')) throw bad('root element is not a common-policy ruleset');
  const rules: CommonRule<A, T>[] = [];
  const ids = new Set<string>();
  for (const el of childElements(root)) {
    if (!isCp(el, 'rule')) throw bad(`unexpected <${el.name}> in ruleset`);
    const rule = parseRule(el, reader);
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
export function mergeRuleSets<S extends { rules: readonly unknown[] }>(sets: readonly S[]): { rules: S['rules'][number][] } {
  return { rules: sets.flatMap((s) => s.rules) };
}
