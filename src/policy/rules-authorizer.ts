// Presence authorization by the presentity's own pres-rules (RFC 5025 on RFC 4745), read from XCAP.
// Rules are loaded per presentity before its watchers are decided (prepare), kept until they change,
// and a change re-decides every watcher of that presentity at once.
import type { Logger } from 'pino';
import { NS, firstChild, textOf } from '../formats/xml.js';
import type { PidfDocument } from '../formats/pidf.js';
import { ANONYMOUS_WATCHER } from '../events/subscription.js';
import type { Authorizer, Decision } from './authorizer.js';
import { mergeRuleSets, parsePresRules, type RuleSet, type SubHandling } from '../formats/pres-rules.js';
import { applyTransformations, evaluate, viewKey } from './pres-rules.js';
import { OwnerRules, type RulesSource } from './owner-rules.js';

/** Where a presentity's pres-rules documents come from (RFC 5025 §9.7: all of them apply). */
export type { RulesSource } from './owner-rules.js';

export interface DefaultPolicy {
  /** What a watcher gets from a presentity who has no pres-rules at all. */
  handling: SubHandling;
  /** Watcher domains the operator trusts: allowed in full when the presentity has no rules. */
  allowDomains: readonly string[];
}

const identity = (d: PidfDocument): PidfDocument => d;
const FULL: Decision = { subHandling: 'allow', view: 'full', transform: identity };

/**
 * The sphere of a presentity (RFC 4480 §3.2 rpid:sphere in the composed person). RFC 5025 §3.1.2:
 * derived from all current publications; the composed document already merged them.
 */
export function sphereOf(doc: PidfDocument | undefined): string | undefined {
  const person = doc?.persons[0];
  const el = person ? firstChild(person, NS.RPID, 'sphere') : undefined;
  if (!el) return undefined;
  const t = textOf(el);
  return t || el.children.find((c) => typeof c !== 'string')?.name;
}

export class RulesAuthorizer implements Authorizer {
  /** The presentities' pres-rules (null: none, the default policy applies; 'broken': none readable). */
  private readonly rules: OwnerRules<RuleSet>;
  private readonly listeners: ((presentity: string) => void)[] = [];
  /** Decisions per presentity and watcher, valid for a while (validity conditions depend on the clock). */
  private readonly decisions = new Map<string, Map<string, { d: Decision; at: number; sphere: string | undefined }>>();
  private prunedAt = 0;

  constructor(
    source: RulesSource,
    private readonly defaults: DefaultPolicy,
    log: Logger,
    private readonly decisionTtlMs = 30_000,
  ) {
    this.rules = new OwnerRules(source, (t) => parsePresRules(t), mergeRuleSets, 'pres-rules', log);
    this.rules.onChange((presentity) => {
      this.decisions.delete(presentity);
      for (const l of this.listeners) l(presentity);
    });
  }

  onChange(listener: (presentity: string) => void): void {
    this.listeners.push(listener);
  }

  prepare(presentity: string): Promise<void> {
    return this.rules.prepare(presentity);
  }

  decide(watcher: string, presentity: string, sphere?: string): Decision {
    // A user always sees their own presence in full (their other devices watch it).
    if (watcher === presentity) return FULL;
    const rules = this.rules.get(presentity);
    // Without a readable document the default decides: as cheap as a cache lookup, so nothing is
    // kept per watcher (a held subscription would otherwise keep a decision for as long as it lives).
    if (rules === 'broken') return { subHandling: 'block', view: 'none', transform: identity };
    if (rules === null || rules === undefined) return this.byDefault(watcher);
    const now = Date.now();
    this.prune(now);
    let perPresentity = this.decisions.get(presentity);
    const cached = perPresentity?.get(watcher);
    if (cached && now - cached.at < this.decisionTtlMs && cached.sphere === sphere) return cached.d;
    const d = this.compute(watcher, rules, new Date(now), sphere);
    if (!perPresentity) {
      perPresentity = new Map();
      this.decisions.set(presentity, perPresentity);
    }
    perPresentity.set(watcher, { d, at: now, sphere });
    return d;
  }

  /** Once per TTL, forgets the decisions that ran out (bounded memory: one per watcher seen lately). */
  private prune(now: number): void {
    if (now - this.prunedAt < this.decisionTtlMs) return;
    this.prunedAt = now;
    for (const [presentity, m] of this.decisions) {
      for (const [watcher, c] of m) if (now - c.at >= this.decisionTtlMs) m.delete(watcher);
      if (m.size === 0) this.decisions.delete(presentity);
    }
  }

  /** The operator's default for a presentity without pres-rules. */
  private byDefault(watcher: string): Decision {
    const domain = watcher.slice(watcher.lastIndexOf('@') + 1).toLowerCase();
    if (watcher !== ANONYMOUS_WATCHER && this.defaults.allowDomains.includes(domain)) return FULL;
    return this.defaults.handling === 'allow' ? FULL : { subHandling: this.defaults.handling, view: this.defaults.handling, transform: identity };
  }

  private compute(watcher: string, rules: RuleSet, now: Date, sphere: string | undefined): Decision {
    const anonymous = watcher === ANONYMOUS_WATCHER;
    const p = evaluate(rules, anonymous ? { uri: '', anonymous: true } : { uri: watcher }, now, sphere);
    return { subHandling: p.subHandling, view: viewKey(p), transform: (doc) => applyTransformations(doc, p) };
  }
}
