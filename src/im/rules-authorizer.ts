// MESSAGE authorization by the recipient's own IM rules (the im-rules XCAP usage): the documents are
// read per recipient when a message for them first arrives and kept until they change (a PUT on
// XCAP counts for the very next message); a recipient without any document gets the operator's
// `[im] default`; rules that cannot be read block (fail closed).
import type { Logger } from 'pino';
import { mergeRuleSets } from '../formats/common-policy.js';
import { parseImRules, type ImRuleSet } from '../formats/im-rules.js';
import { evaluateImRules } from '../policy/im-rules.js';
import { OwnerRules, type RulesSource } from '../policy/owner-rules.js';
import type { ImAuthorizer, ImHandling, ImSender } from './types.js';

export interface ImRulesOptions {
  /** What a recipient without IM rules accepts. */
  default: ImHandling;
  /** The recipient's current sphere (RFC 4745 §7.3, from their composed presence), if any. */
  sphere: (recipient: string) => string | undefined;
  now?: () => Date;
}

export class ImRulesAuthorizer implements ImAuthorizer {
  private readonly rules: OwnerRules<ImRuleSet>;

  constructor(source: RulesSource, private readonly o: ImRulesOptions, log: Logger) {
    this.rules = new OwnerRules(source, (t) => parseImRules(t), mergeRuleSets, 'im-rules', log);
  }

  async decide(sender: ImSender, recipient: string): Promise<ImHandling> {
    // A user writing to their own address (their other devices) is never stopped by their own rules.
    if (!sender.anonymous && sender.uri === recipient) return 'allow';
    await this.rules.prepare(recipient);
    const rules = this.rules.get(recipient);
    if (rules === 'broken') return 'block';
    if (rules === null || rules === undefined) return this.o.default;
    const who = sender.anonymous ? { uri: '', anonymous: true } : { uri: sender.uri };
    return evaluateImRules(rules, who, this.o.now?.() ?? new Date(), this.o.sphere(recipient));
  }
}
