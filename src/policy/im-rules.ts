// IM rules evaluated: may this sender's message reach the recipient now? RFC 4745 §10 on the rules
// that apply (src/policy/common-policy.ts): the permission of the most permissive matching rule;
// a matching rule without <im-handling> grants nothing, i.e. block (§10.2: the lowest value), and so
// does a ruleset in which no rule matches (§10.1: no permission at all). Pure: no I/O, no clock.
import { maxOf } from '../formats/common-policy.js';
import { IM_HANDLING_VALUE, type ImHandling, type ImRuleSet } from '../formats/im-rules.js';
import { matchingRules, type Identity } from './common-policy.js';

export function evaluateImRules(rules: ImRuleSet, sender: Identity, now: Date, sphere?: string): ImHandling {
  let h: ImHandling = 'block';
  for (const r of matchingRules(rules.rules, sender, now, sphere)) h = maxOf(IM_HANDLING_VALUE, h, r.actions.imHandling);
  return h;
}
