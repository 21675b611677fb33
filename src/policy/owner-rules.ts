// The rule documents of each owner (a presentity's pres-rules, a recipient's IM rules), read from a
// RulesSource (src/xcap/rules-source.ts), parsed once, merged (every document of the owner applies,
// RFC 5025 §9.7), kept until the source reports a change, then read again. Fails closed: a source
// that cannot be read, or documents none of which parse, are 'broken' (the authorizers then block),
// never "no rules" (which would apply the operator's default).
import type { Logger } from 'pino';

/** Where an owner's rule documents come from (the embedded XCAP server or an external one). */
export interface RulesSource {
  /** The text of every document of the owner (all of them apply). */
  load(owner: string): Promise<string[]>;
  onChange(listener: (owner: string) => void): void;
}

/** null: the owner has no document; 'broken': there are rules, but none could be read. */
export type OwnerRulesState<R> = R | null | 'broken';

export class OwnerRules<R> {
  private readonly rules = new Map<string, OwnerRulesState<R>>();
  private readonly loading = new Map<string, Promise<void>>();
  private readonly listeners: ((owner: string) => void)[] = [];

  constructor(
    private readonly source: RulesSource,
    private readonly parse: (text: string) => R,
    private readonly merge: (sets: R[]) => R,
    /** The usage's name, for the log ("pres-rules", "im-rules"). */
    private readonly what: string,
    private readonly log: Logger,
  ) {
    source.onChange((owner) => {
      this.rules.delete(owner);
      void this.prepare(owner).then(() => {
        for (const l of this.listeners) l(owner);
      });
    });
  }

  /** Called once an owner's changed documents have been read again. */
  onChange(listener: (owner: string) => void): void {
    this.listeners.push(listener);
  }

  /** The state loaded by prepare(); undefined when not loaded (yet). */
  get(owner: string): OwnerRulesState<R> | undefined {
    return this.rules.get(owner);
  }

  /** Loads an owner's documents unless already loaded; concurrent calls share one load. */
  prepare(owner: string): Promise<void> {
    if (this.rules.has(owner)) return Promise.resolve();
    let p = this.loading.get(owner);
    if (!p) {
      p = this.load(owner).finally(() => this.loading.delete(owner));
      this.loading.set(owner, p);
    }
    return p;
  }

  private async load(owner: string): Promise<void> {
    let texts: string[];
    try {
      texts = await this.source.load(owner);
    } catch (e) {
      // Fail closed: an unreachable rules store never means "allow all".
      this.log.warn({ owner, err: (e as Error).message }, `${this.what} unavailable; blocking until they can be read`);
      this.rules.set(owner, 'broken');
      return;
    }
    if (texts.length === 0) {
      this.rules.set(owner, null);
      return;
    }
    const sets: R[] = [];
    for (const t of texts) {
      try {
        sets.push(this.parse(t));
      } catch (e) {
        this.log.warn({ owner, err: (e as Error).message }, `unreadable ${this.what} document ignored`);
      }
    }
    this.rules.set(owner, sets.length > 0 ? this.merge(sets) : 'broken');
  }
}
