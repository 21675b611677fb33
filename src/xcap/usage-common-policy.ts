// What every common-policy (RFC 4745) application usage shares: the schema of <ruleset>, <rule> and
// the RFC 4745 conditions (identity, sphere, validity), and the uniqueness of rule ids (§7: xs:ID).
// A usage adds its own actions and transformations (pres-rules: RFC 5025 §3; im-rules: Herald's
// im-handling). Pure: no I/O.

import { NS, type XmlElement } from '../formats/xml.js';
import { CT } from '../formats/content-types.js';
import { conflict, type UniquenessConflict } from './errors.js';
import { key, validateSchema, type ElementRule, type Schema } from './schema.js';
import { suggestAlternative, type XcapUsage } from './usage.js';

const CP = NS.COMMON_POLICY;

// xs:dateTime, as RFC 4745 <from>/<until> use it.
const DATE_TIME = (t: string): boolean => /^-?\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$/.test(t);

/** RFC 4745 §13 for everything but the contents of <actions> and <transformations>. */
const COMMON_RULES: Record<string, ElementRule> = {
  ruleset: { children: { [key(CP, 'rule')]: { rule: 'rule' } } },
  rule: {
    children: {
      [key(CP, 'conditions')]: { rule: 'conditions', max: 1 },
      [key(CP, 'actions')]: { rule: 'actions', max: 1 },
      [key(CP, 'transformations')]: { rule: 'transformations', max: 1 },
    },
    order: [[key(CP, 'conditions')], [key(CP, 'actions')], [key(CP, 'transformations')]],
    required: ['id'],
  },
  conditions: {
    children: {
      [key(CP, 'identity')]: { rule: 'identity' },
      [key(CP, 'sphere')]: { rule: 'sphere' },
      [key(CP, 'validity')]: { rule: 'validity' },
    },
  },
  identity: { children: { [key(CP, 'one')]: { rule: 'one' }, [key(CP, 'many')]: { rule: 'many' } } },
  one: { required: ['id'] },
  many: { children: { [key(CP, 'except')]: { rule: 'except' } } },
  except: {},
  sphere: { required: ['value'] },
  validity: { children: { [key(CP, 'from')]: { rule: 'date-time' }, [key(CP, 'until')]: { rule: 'date-time' } } },
  'date-time': { text: DATE_TIME },
};

export interface CommonPolicyUsageSpec {
  auid: string;
  /** The usage's own namespace: the default document namespace (as RFC 5025 §9.3 does for pres-rules). */
  ns: string;
  prefix: string;
  /** Rules for <actions> and <transformations> (named 'actions' and 'transformations') and what they use. */
  rules: Readonly<Record<string, ElementRule>>;
}

/** An XCAP usage for a common-policy document: schema check, then unique rule ids (409 uniqueness-failure). */
export function commonPolicyUsage(spec: CommonPolicyUsageSpec): XcapUsage {
  const schema: Schema = {
    namespaces: new Set([CP, spec.ns]),
    defaultNs: spec.ns,
    prefixes: { [CP]: 'cp', [spec.ns]: spec.prefix },
    root: { key: key(CP, 'ruleset'), rule: 'ruleset' },
    rules: { ...COMMON_RULES, ...spec.rules },
  };
  return {
    auid: spec.auid,
    mime: CT.AUTH_POLICY,
    // <ruleset> and <rule> are common-policy elements although the default namespace is the usage's:
    // node selectors for them need a prefix bound by xmlns() in the query (RFC 4825 §6.4),
    // e.g. "cp:ruleset/cp:rule[@id="a"]".
    defaultNs: spec.ns,
    prefixes: schema.prefixes,
    userDocuments: true,
    validate(root: XmlElement) {
      validateSchema(root, schema);
      const ids = new Set<string>();
      const conflicts: UniquenessConflict[] = [];
      let pos = 0;
      for (const c of root.children) {
        if (typeof c === 'string' || c.ns !== CP || c.name !== 'rule') continue;
        pos++;
        const id = c.attrs['id'] as string;
        if (ids.has(id)) conflicts.push({ field: `cp:ruleset/cp:rule[${pos}]/@id`, altValues: suggestAlternative(id, (v) => ids.has(v)) });
        ids.add(id);
      }
      if (conflicts.length > 0) throw conflict({ kind: 'uniqueness-failure', exists: conflicts });
    },
  };
}
