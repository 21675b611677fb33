// The pres-rules application usage (RFC 5025 §9): common-policy documents (RFC 4745) carrying the
// presence actions and transformations of RFC 5025 §3. The schema check covers the elements of
// both namespaces; rule ids are unique in a document (RFC 4745 §7: the id is of type xs:ID).
// Pure: no I/O.

import { NS } from '../formats/xml.js';
import { key, type ElementRule } from './schema.js';
import { commonPolicyUsage } from './usage-common-policy.js';

const PR = NS.PRES_RULES;

const BOOLEAN = (t: string): boolean => /^(true|false|1|0)$/.test(t);

const BOOLEAN_TRANSFORMATIONS = [
  'provide-activities', 'provide-class', 'provide-deviceID', 'provide-mood', 'provide-place-is',
  'provide-place-type', 'provide-privacy', 'provide-relationship', 'provide-status-icon',
  'provide-sphere', 'provide-time-offset', 'provide-note',
];

const set = (names: readonly string[], rule: string, max?: number): Record<string, { rule: string; max?: number }> =>
  Object.fromEntries(names.map((n) => [key(PR, n), max === undefined ? { rule } : { rule, max }]));

const RULES: Record<string, ElementRule> = {
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

export const presRulesUsage = commonPolicyUsage({ auid: 'pres-rules', ns: PR, prefix: 'pr', rules: RULES });
