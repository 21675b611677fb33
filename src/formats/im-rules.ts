// IM rules documents (the im-rules XCAP usage, src/xcap/usage-im-rules.ts): common-policy rulesets
// (RFC 4745, parsed by ./common-policy.ts) whose one action is <im-handling> in Herald's namespace.
// No transformations are defined: a message is delivered whole or not at all. Pure: no I/O.
import { NS, childElements, textOf, type XmlElement, type XmlLimits } from './xml.js';
import { collapse, maxOf, parseRuleset, type CommonRule, type CommonRuleSet } from './common-policy.js';
import { PolicyError } from './pres-rules.js';

/** What the recipient's IM rules say about a sender, in increasing order of permission. */
export type ImHandling = 'block' | 'polite-block' | 'allow';

/** RFC 4745 §10.2: an enumerated permission combined by maximum; block is the lowest (and the default). */
export const IM_HANDLING_VALUE: Readonly<Record<ImHandling, number>> = { block: 0, 'polite-block': 10, allow: 20 };

const isImHandling = (v: string): v is ImHandling => Object.prototype.hasOwnProperty.call(IM_HANDLING_VALUE, v);

export interface ImRulesActions { imHandling?: ImHandling }

export type ImRule = CommonRule<ImRulesActions, undefined>;
export type ImRuleSet = CommonRuleSet<ImRulesActions, undefined>;

const bad = (what: string): PolicyError => new PolicyError(`Bad im-rules: ${what}`);

function parseActions(el: XmlElement): ImRulesActions {
  let imHandling: ImHandling | undefined;
  for (const c of childElements(el)) {
    if (c.ns !== NS.IM_RULES || c.name !== 'im-handling') continue; // other usages' actions are not ours (RFC 4745 §6.2)
    const v = collapse(textOf(c));
    if (!isImHandling(v)) throw bad('im-handling must be block, polite-block or allow');
    imHandling = imHandling === undefined ? v : maxOf(IM_HANDLING_VALUE, imHandling, v);
  }
  return imHandling === undefined ? {} : { imHandling };
}

const READER = {
  fail: bad,
  actions: parseActions,
  noActions: (): ImRulesActions => ({}),
  // Unknown transformations could only grant more; there is nothing to grant (RFC 4745 §10.2).
  transformations: (): undefined => undefined,
  noTransformations: (): undefined => undefined,
};

/** Parses one im-rules document; PolicyError for anything the XCAP usage would refuse with 409. */
export function parseImRules(xml: string, limits?: Partial<XmlLimits>): ImRuleSet {
  return parseRuleset(xml, READER, limits);
}
