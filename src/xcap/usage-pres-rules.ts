// The pres-rules application usage (RFC 5025 §9): common-policy documents (RFC 4745) carrying the
// presence actions and transformations of RFC 5025 §3. The schema check covers the elements of
// both namespaces; rule ids are unique in a document (RFC 4745 §7: the id is of type xs:ID).
// Pure: no I/O.

import { NS } from '../formats/xml.js';
import { CT } from '../formats/content-types.js';
import { conflict, type UniquenessConflict } from './errors.js';
import { key, validateSchema, type ElementRule, type Schema } from './schema.js';
import { suggestAlternative, type XcapUsage } from './usage.js';

const CP = NS.COMMON_POLICY;
const PR = NS.PRES_RULES;

const BOOLEAN = (t: string): boolean => /^(true|false|1|0)$/.test(t);
// xs:dateTime, as RFC 4745 <from>/<until> use it.
const DATE_TIME = (t: string): boolean => /^-?\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$/.test(t);

const BOOLEAN_TRANSFORMATIONS = [
  'provide-activities', 'provide-class', 'provide-deviceID', 'provide-mood', 'provide-place-is',
  'provide-place-type', 'provide-privacy', 'provide-relationship', 'provide-status-icon',
  'provide-sphere', 'provide-time-offset', 'provide-note',
];

const set = (names: readonly string[], rule: string, max?: number): Record<string, { rule: string; max?: number }> =>
  Object.fromEntries(names.map((n) => [key(PR, n), max === undefined ? { rule } : { rule, max }]));

const RULES: Record<string, ElementRule> = {
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
  // RFC 5025 §3.2.1: the only action.
  actions: { children: { [key(PR, 'sub-handling')]: { rule: 'sub-handling', max: 1 } } },
  'sub-handling': { text: (t) => ['block', 'confirm', 'polite-block', 'allow'].includes(t) },
  // RFC 5025 §3.3: the transformations, each at most once.
  transformations: {
    children: {
      ...set(['provide-services'], 'provide-services', 1),
      ...set(['provide-persons'], 'provide-persons', 1),
      ...set(['provide-devices'], 'provide-devices', 1),
      ...set(BOOLEAN_TRANSFORMATIONS, 'boolean', 1),
      ...set(['provide-user-input'], 'user-input', 1),
      ...set(['provide-all-attributes'], 'empty', 1),
      ...set(['provide-unknown-attribute'], 'unknown-attribute'),
    },
  },
  'provide-services': { children: { ...set(['all-services'], 'empty', 1), ...set(['service-uri', 'service-uri-scheme', 'occurrence-id', 'class'], 'text') } },
  'provide-persons': { children: { ...set(['all-persons'], 'empty', 1), ...set(['occurrence-id', 'class'], 'text') } },
  'provide-devices': { children: { ...set(['all-devices'], 'empty', 1), ...set(['deviceID', 'occurrence-id', 'class'], 'text') } },
  boolean: { text: BOOLEAN },
  'user-input': { text: (t) => ['false', 'bare', 'thresholds', 'full'].includes(t) },
  'unknown-attribute': { required: ['ns', 'name'], text: BOOLEAN },
  empty: {},
  text: { text: (t) => t !== '' },
};

const SCHEMA: Schema = {
  namespaces: new Set([CP, PR]),
  defaultNs: PR,
  prefixes: { [CP]: 'cp', [PR]: 'pr' },
  root: { key: key(CP, 'ruleset'), rule: 'ruleset' },
  rules: RULES,
};

export const presRulesUsage: XcapUsage = {
  auid: 'pres-rules',
  mime: CT.AUTH_POLICY,
  // RFC 5025 §9.3 names the pres-rules namespace as the default document namespace, although
  // <ruleset> and <rule> are common-policy elements: node selectors for them need a prefix bound
  // by xmlns() in the query (RFC 4825 §6.4), e.g. "cp:ruleset/cp:rule[@id="a"]".
  defaultNs: PR,
  prefixes: { [CP]: 'cp', [PR]: 'pr' },
  userDocuments: true,
  validate(root) {
    validateSchema(root, SCHEMA);
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
