// A small structural validator standing in for the XML schemas of the application usages
// (RFC 4825 §5.3: the server MUST validate every document it stores against the usage's schema;
// failure is a 409 <schema-validation-error>, §11.2). It checks what the schemas say about
// elements in the usage's own namespaces: which children may appear where, how often, in which
// order, which attributes are required, and what text is allowed. Elements of other namespaces
// are accepted wherever they appear, as the schemas' <xs:any namespace="##other"/> extension
// points allow.
// Pure: no I/O.

import type { XmlElement } from '../formats/xml.js';
import { conflict } from './errors.js';

export interface ElementRule {
  /** Allowed child elements in the validated namespaces, keyed "{ns}local", with their rule and max count. */
  children?: Readonly<Record<string, { rule: string; max?: number }>>;
  /** xs:sequence: children keyed in an earlier group must precede those of a later group. */
  order?: readonly (readonly string[])[];
  /** Attributes that must be present (keys as in XmlElement.attrs). */
  required?: readonly string[];
  /** Character content: none (the default), any, or a predicate on the trimmed text. */
  text?: 'none' | 'any' | ((text: string) => boolean);
  /** Further checks that the schema expresses but this table cannot; throw via invalid(). */
  check?: (el: XmlElement, at: string) => void;
}

export interface Schema {
  /** Namespaces whose elements are validated. */
  namespaces: ReadonlySet<string>;
  /** The namespace that needs no prefix in paths (the usage's default document namespace). */
  defaultNs: string;
  /** Prefixes for the other namespaces in paths. */
  prefixes: Readonly<Record<string, string>>;
  root: { key: string; rule: string };
  rules: Readonly<Record<string, ElementRule>>;
}

export const key = (ns: string, local: string): string => `{${ns}}${local}`;

export function invalid(at: string, what: string): never {
  throw conflict({ kind: 'schema-validation-error', phrase: `${at}: ${what}` });
}

/** The qualified name of an element as a node-selector step, prefixed unless in the default namespace. */
export function stepName(el: XmlElement, schema: Pick<Schema, 'defaultNs' | 'prefixes'>): string {
  if (el.ns === schema.defaultNs) return el.name;
  const p = schema.prefixes[el.ns];
  return p !== undefined ? `${p}:${el.name}` : el.name;
}

/**
 * Visits every element with its location as a node selector relative to the document
 * ("resource-lists/list[2]/entry[1]"), positions counted among same-named siblings.
 * Iterative: the parser already bounds depth, this keeps the stack flat anyway.
 */
export function walk(root: XmlElement, schema: Pick<Schema, 'defaultNs' | 'prefixes'>, visit: (el: XmlElement, at: string) => void): void {
  const stack: { el: XmlElement; at: string }[] = [{ el: root, at: stepName(root, schema) }];
  while (stack.length > 0) {
    const { el, at } = stack.pop() as { el: XmlElement; at: string };
    visit(el, at);
    const counts = new Map<string, number>();
    const kids: { el: XmlElement; at: string }[] = [];
    for (const c of el.children) {
      if (typeof c === 'string') continue;
      const k = key(c.ns, c.name);
      const n = (counts.get(k) ?? 0) + 1;
      counts.set(k, n);
      kids.push({ el: c, at: `${at}/${stepName(c, schema)}[${n}]` });
    }
    for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i] as { el: XmlElement; at: string });
  }
}

function checkElement(el: XmlElement, rule: ElementRule, at: string, schema: Schema, pending: { el: XmlElement; rule: ElementRule; at: string }[]): void {
  for (const attr of rule.required ?? []) {
    if (!Object.prototype.hasOwnProperty.call(el.attrs, attr)) invalid(at, `missing attribute ${attr}`);
  }
  const text = el.children.filter((c): c is string => typeof c === 'string').join('').trim();
  const mode = rule.text ?? 'none';
  if (mode === 'none' && text !== '') invalid(at, 'unexpected text');
  if (typeof mode === 'function' && !mode(text)) invalid(at, 'invalid value');
  const counts = new Map<string, number>();
  let group = 0;
  for (const c of el.children) {
    if (typeof c === 'string' || !schema.namespaces.has(c.ns)) continue;
    const k = key(c.ns, c.name);
    const allowed = rule.children?.[k];
    const cAt = `${at}/${stepName(c, schema)}`;
    if (allowed === undefined) invalid(cAt, 'element not allowed here');
    const n = (counts.get(k) ?? 0) + 1;
    counts.set(k, n);
    if (allowed.max !== undefined && n > allowed.max) invalid(cAt, 'element repeated');
    if (rule.order) {
      const g = rule.order.findIndex((grp) => grp.includes(k));
      if (g !== -1) {
        if (g < group) invalid(cAt, 'element out of order');
        group = g;
      }
    }
    const childRule = schema.rules[allowed.rule];
    if (childRule === undefined) throw new Error(`schema has no rule ${allowed.rule}`);
    pending.push({ el: c, rule: childRule, at: `${cAt}[${n}]` });
  }
  rule.check?.(el, at);
}

/** Validates a whole document; throws a 409 XcapError with <schema-validation-error> on the first problem. */
export function validateSchema(root: XmlElement, schema: Schema): void {
  if (key(root.ns, root.name) !== schema.root.key) invalid(root.name, `wrong root element or namespace (expected ${schema.root.key})`);
  const rootRule = schema.rules[schema.root.rule];
  if (rootRule === undefined) throw new Error(`schema has no rule ${schema.root.rule}`);
  const pending = [{ el: root, rule: rootRule, at: stepName(root, schema) }];
  while (pending.length > 0) {
    const { el, rule, at } = pending.pop() as { el: XmlElement; rule: ElementRule; at: string };
    checkElement(el, rule, at, schema, pending);
  }
}
