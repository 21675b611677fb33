// Evaluating RFC 4825 §6.3 node selectors on an XmlElement tree, and finding where a PUT inserts
// a new element (§8.2.3). XPath itself cannot say where an element that does not exist yet would
// go, so both are done here on the tree.
// Pure: no I/O.

import type { XmlElement } from '../formats/xml.js';
import type { NameTest, Step } from './path.js';

function passesName(el: XmlElement, name: NameTest): boolean {
  return name.any || (el.ns === name.ns && el.name === name.local);
}

function passesAttr(el: XmlElement, step: Step): boolean {
  if (step.attr === undefined) return true;
  return Object.prototype.hasOwnProperty.call(el.attrs, step.attr.key) && el.attrs[step.attr.key] === step.attr.value;
}

function elementChildren(el: XmlElement): XmlElement[] {
  const out: XmlElement[] = [];
  for (const c of el.children) if (typeof c !== 'string') out.push(c);
  return out;
}

/**
 * The children of `parent` a step selects. The position counts among the children that pass the
 * name test, and is applied before the attribute test: "entry[2][@uri=x]" is the second entry,
 * provided it has that uri (RFC 4825 §6.3, as in XPath predicates applied left to right).
 */
function stepChildren(parent: XmlElement, step: Step): XmlElement[] {
  let named = elementChildren(parent).filter((c) => passesName(c, step.name));
  if (step.position !== undefined) {
    const at = named[step.position - 1];
    named = at === undefined ? [] : [at];
  }
  return named.filter((c) => passesAttr(c, step));
}

export interface Selected { el: XmlElement; parent: XmlElement | undefined }

/**
 * The elements the steps select. The first step is matched against the root element (the only
 * element child of the document node, so only position 1 can match it).
 */
export function selectAll(root: XmlElement, steps: readonly Step[]): Selected[] {
  const first = steps[0];
  if (first === undefined) return [];
  if (!passesName(root, first.name) || (first.position !== undefined && first.position !== 1) || !passesAttr(root, first)) return [];
  let current: Selected[] = [{ el: root, parent: undefined }];
  for (const step of steps.slice(1)) {
    const next: Selected[] = [];
    for (const s of current) for (const c of stepChildren(s.el, step)) next.push({ el: c, parent: s.el });
    current = next;
    if (current.length === 0) break;
  }
  return current;
}

/** The element a node selector names: RFC 4825 §6.3 requires exactly one; none or several is "no such node". */
export function selectOne(root: XmlElement, steps: readonly Step[]): Selected | undefined {
  const all = selectAll(root, steps);
  return all.length === 1 ? all[0] : undefined;
}

/** How many leading steps select exactly one element: the closest existing ancestor for <no-parent>. */
export function existingPrefix(root: XmlElement, steps: readonly Step[]): number {
  let n = 0;
  while (n < steps.length && selectOne(root, steps.slice(0, n + 1)) !== undefined) n++;
  return n;
}

export type InsertOutcome = { ok: true } | { ok: false; reason: 'no-parent' | 'cannot-insert' };

/**
 * Inserts `el` (which no existing element matched) below the element the steps but the last
 * select, where the last step says (RFC 4825 §8.2.3): with a position n, so that it becomes the
 * n-th sibling passing the name test; otherwise after the last such sibling, or after all
 * element children when there is none. A "*" name test stands for the new element's own name.
 * Mutates `root`; the caller works on a copy and checks afterwards that the selector now names `el`.
 */
export function insertElement(root: XmlElement, steps: readonly Step[], el: XmlElement): InsertOutcome {
  const last = steps[steps.length - 1];
  if (last === undefined || steps.length < 2) return { ok: false, reason: 'cannot-insert' };
  const parent = selectOne(root, steps.slice(0, -1));
  if (parent === undefined) return { ok: false, reason: 'no-parent' };
  const p = parent.el;
  const name: NameTest = last.name.any ? { any: false, ns: el.ns, local: el.name } : last.name;
  if (!passesName(el, name)) return { ok: false, reason: 'cannot-insert' };
  const siblings = elementChildren(p).filter((c) => passesName(c, name));
  let at: number;
  if (last.position !== undefined) {
    if (last.position - 1 > siblings.length) return { ok: false, reason: 'cannot-insert' };
    const before = siblings[last.position - 1];
    const after = siblings[last.position - 2];
    if (before !== undefined) at = p.children.indexOf(before);
    else if (after !== undefined) at = p.children.indexOf(after) + 1;
    else at = afterLastElement(p);
  } else {
    const lastSibling = siblings[siblings.length - 1];
    at = lastSibling !== undefined ? p.children.indexOf(lastSibling) + 1 : afterLastElement(p);
  }
  p.children.splice(at, 0, el);
  return { ok: true };
}

function afterLastElement(p: XmlElement): number {
  for (let i = p.children.length - 1; i >= 0; i--) if (typeof p.children[i] !== 'string') return i + 1;
  return p.children.length;
}

/** A deep copy, so that a failed change leaves the cached document untouched. */
export function cloneElement(el: XmlElement): XmlElement {
  return {
    ns: el.ns,
    name: el.name,
    attrs: Object.defineProperties({}, Object.getOwnPropertyDescriptors(el.attrs)) as Record<string, string>,
    children: el.children.map((c) => (typeof c === 'string' ? c : cloneElement(c))),
  };
}
