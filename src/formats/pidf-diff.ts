// application/pidf-diff+xml (RFC 5262): a presence document sent whole, <pidf-full version>, or as
// a change, <patch version> holding RFC 5261 XML patch operations (add, replace, remove) whose `sel`
// attributes are XPath-like selectors. Pure: no I/O.
//
// What is read: selectors of RFC 5261 §4.1 built from steps separated by "/", each a name test (`*`,
// `name` or `prefix:name`, unprefixed names in the patch document's default namespace, §4.2.2) with
// at most one predicate `[@attr='value']` or `[n]`, the last step optionally `@attr` or `text()`.
// Namespace prefixes are those declared on the patch root element. Every selector must match
// exactly one node (§4.1). That covers what RFC 5262's examples and deployed clients send.
//
// What is written: changes at the granularity of RFC 4479 elements identified by id (tuple,
// dm:person, dm:device): a changed element is replaced whole, a new one added, a gone one removed.
// Anything else (notes, other extensions, the entity) changing ⇒ no patch: full state instead.
import { NS, childElements, serializeXml, type XmlElement, type XmlLimits, type XmlNode } from './xml.js';
import { PidfError, parseXmlOr, pidfElement, pidfFromElement, serializePidf, type PidfDocument } from './pidf.js';

export type PatchOp =
  | { op: 'add'; sel: string; pos: 'before' | 'after' | 'prepend' | undefined; type: string | undefined; content: XmlNode[] }
  | { op: 'replace'; sel: string; content: XmlNode[] }
  | { op: 'remove'; sel: string };

export type PidfDiff =
  | { kind: 'full'; version: number; document: PidfDocument }
  | { kind: 'patch'; version: number; ops: PatchOp[]; prefixes: ReadonlyMap<string, string> };

const bad = (what: string): PidfError => new PidfError(`Bad pidf-diff: ${what}`);

function versionOf(el: XmlElement): number {
  const v = el.attrs['version'];
  if (v === undefined || !/^\d{1,10}$/.test(v.trim())) throw bad('version must be a non-negative integer');
  return Number(v.trim());
}

/** Namespace declarations on the root start tag (the parser resolves prefixes and keeps none). */
function rootPrefixes(text: string): Map<string, string> {
  const start = /<([A-Za-z_][\w.-]*:)?[A-Za-z_][\w.-]*(\s[^>]*)?>/.exec(text.replace(/<\?[\s\S]*?\?>|<!--[\s\S]*?-->/g, ''));
  const out = new Map<string, string>();
  const attrs = start?.[2] ?? '';
  for (const m of attrs.matchAll(/xmlns(?::([A-Za-z_][\w.-]*))?\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) out.set(m[1] ?? '', m[2] ?? m[3] ?? '');
  return out;
}

/** Parses a pidf-diff document (RFC 5262 §4): pidf-full or patch. */
export function parsePidfDiff(text: string, limits?: Partial<XmlLimits>): PidfDiff {
  const root = parseXmlOr(text, limits, bad);
  if (root.ns !== NS.PIDF_DIFF) throw bad('root element is not in the pidf-diff namespace');
  if (root.name === 'pidf-full') {
    const version = versionOf(root);
    const attrs = { ...root.attrs };
    delete attrs['version'];
    return { kind: 'full', version, document: pidfFromElement({ ns: NS.PIDF, name: 'presence', attrs, children: root.children }) };
  }
  if (root.name !== 'patch') throw bad('root element must be pidf-full or patch');
  const ops: PatchOp[] = [];
  for (const el of childElements(root)) {
    const sel = el.attrs['sel'];
    if (el.ns !== NS.PIDF_DIFF || sel === undefined || sel.trim() === '') throw bad('patch operation without sel');
    if (el.name === 'add') {
      const pos = el.attrs['pos'];
      if (pos !== undefined && pos !== 'before' && pos !== 'after' && pos !== 'prepend') throw bad('bad pos');
      ops.push({ op: 'add', sel, pos, type: el.attrs['type'], content: el.children });
    } else if (el.name === 'replace') ops.push({ op: 'replace', sel, content: el.children });
    else if (el.name === 'remove') ops.push({ op: 'remove', sel });
    else throw bad(`unknown operation ${el.name}`);
  }
  return { kind: 'patch', version: versionOf(root), ops, prefixes: rootPrefixes(text) };
}

// ---- applying (RFC 5261 §4) ----------------------------------------------------------------------

type Target =
  | { kind: 'element'; el: XmlElement; parent: XmlElement | undefined }
  | { kind: 'attr'; el: XmlElement; name: string }
  | { kind: 'text'; el: XmlElement };

/** Splits on "/" outside brackets and quotes. */
function steps(sel: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  let quote = '';
  for (const ch of sel.trim()) {
    if (quote) {
      if (ch === quote) quote = '';
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === '[') depth++;
    else if (ch === ']') depth--;
    else if (ch === '/' && depth === 0) {
      out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  out.push(cur);
  if (out.some((s) => s.trim() === '')) throw bad(`unsupported selector ${sel}`);
  return out.map((s) => s.trim());
}

function matcher(step: string, prefixes: ReadonlyMap<string, string>): (el: XmlElement, index: number) => boolean {
  const m = /^(\*|(?:([A-Za-z_][\w.-]*):)?([A-Za-z_][\w.-]*))(?:\[(?:@([A-Za-z_][\w.:-]*)\s*=\s*(?:'([^']*)'|"([^"]*)")|(\d+))\])?$/.exec(step);
  if (!m) throw bad(`unsupported selector step ${step}`);
  const any = m[1] === '*';
  const ns = any ? undefined : m[2] !== undefined ? prefixes.get(m[2]) : (prefixes.get('') ?? '');
  if (!any && ns === undefined) throw bad(`undeclared prefix ${m[2]}`);
  const name = m[3];
  const attr = m[4];
  const value = m[5] ?? m[6];
  const position = m[7] !== undefined ? Number(m[7]) : undefined;
  return (el, index) =>
    (any || (el.ns === ns && el.name === name)) && (attr === undefined || el.attrs[attr] === value) && (position === undefined || index === position);
}

/** Evaluates a selector on the tree; exactly one node must match (RFC 5261 §4.1). */
function select(root: XmlElement, sel: string, prefixes: ReadonlyMap<string, string>): Target {
  const s = steps(sel.replace(/^\//, ''));
  let last = s[s.length - 1]!;
  let tail: 'attr' | 'text' | undefined;
  if (last === 'text()') tail = 'text';
  else if (last.startsWith('@')) tail = 'attr';
  if (tail) s.pop();
  if (s.length === 0) throw bad(`unsupported selector ${sel}`);
  if (!matcher(s[0]!, prefixes)(root, 1)) throw bad(`no match for ${sel}`);
  let current: { el: XmlElement; parent: XmlElement | undefined }[] = [{ el: root, parent: undefined }];
  for (const step of s.slice(1)) {
    const test = matcher(step, prefixes);
    const next: typeof current = [];
    for (const c of current) {
      // Positions count among siblings that pass the name test (XPath's [n] after a name test).
      const nameOnly = matcher(step.replace(/\[.*\]$/, ''), prefixes);
      let i = 0;
      for (const child of childElements(c.el)) {
        if (!nameOnly(child, 0)) continue;
        i++;
        if (test(child, i)) next.push({ el: child, parent: c.el });
      }
    }
    current = next;
  }
  if (current.length !== 1) throw bad(`${current.length === 0 ? 'no match' : 'several matches'} for ${sel}`);
  const hit = current[0]!;
  if (tail === 'text') return { kind: 'text', el: hit.el };
  if (tail === 'attr') {
    last = last.slice(1);
    return { kind: 'attr', el: hit.el, name: last };
  }
  return { kind: 'element', el: hit.el, parent: hit.parent };
}

/** A deep copy, so that a patch never changes the document it was applied to. */
function clone(el: XmlElement): XmlElement {
  return { ns: el.ns, name: el.name, attrs: { ...el.attrs }, children: el.children.map((c) => (typeof c === 'string' ? c : clone(c))) };
}

const textContent = (nodes: readonly XmlNode[]): string => nodes.filter((n): n is string => typeof n === 'string').join('');
const elementsOf = (nodes: readonly XmlNode[]): XmlElement[] => nodes.filter((n): n is XmlElement => typeof n !== 'string').map(clone);

/**
 * Applies a patch's operations in order (RFC 5261 §4) to a copy of the document; the result is
 * checked as a PIDF document again. Throws PidfError for anything that does not apply.
 */
export function applyPatch(doc: PidfDocument, ops: readonly PatchOp[], prefixes: ReadonlyMap<string, string>): PidfDocument {
  const root = clone(pidfElement(doc));
  for (const op of ops) {
    const t = select(root, op.sel, prefixes);
    if (op.op === 'add') {
      if (op.type !== undefined) {
        // Adding an attribute (type="@name").
        if (t.kind !== 'element' || !op.type.startsWith('@')) throw bad('bad add type');
        const name = op.type.slice(1);
        if (name in t.el.attrs) throw bad(`attribute ${name} exists`);
        t.el.attrs[name] = textContent(op.content);
        continue;
      }
      if (t.kind !== 'element') throw bad('add needs an element selector');
      const nodes = elementsOf(op.content);
      if (op.pos === 'before' || op.pos === 'after') {
        if (!t.parent) throw bad('cannot add beside the root');
        const i = t.parent.children.indexOf(t.el);
        t.parent.children.splice(op.pos === 'before' ? i : i + 1, 0, ...nodes);
      } else if (op.pos === 'prepend') t.el.children.unshift(...nodes);
      else t.el.children.push(...nodes);
    } else if (op.op === 'replace') {
      if (t.kind === 'attr') {
        if (!(t.name in t.el.attrs)) throw bad(`no attribute ${t.name}`);
        t.el.attrs[t.name] = textContent(op.content);
      } else if (t.kind === 'text') {
        t.el.children = [...t.el.children.filter((c) => typeof c !== 'string'), textContent(op.content)];
      } else {
        const nodes = elementsOf(op.content);
        if (nodes.length !== 1 || !t.parent) throw bad('replace of an element needs one element, not the root');
        t.parent.children[t.parent.children.indexOf(t.el)] = nodes[0]!;
      }
    } else {
      if (t.kind === 'attr') delete t.el.attrs[t.name];
      else if (t.kind === 'text') t.el.children = t.el.children.filter((c) => typeof c !== 'string');
      else {
        if (!t.parent) throw bad('cannot remove the root');
        t.parent.children.splice(t.parent.children.indexOf(t.el), 1);
      }
    }
  }
  return pidfFromElement(root);
}

// ---- writing -------------------------------------------------------------------------------------

const DIFF_PREFIXES = 'xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:p="urn:ietf:params:xml:ns:pidf-diff"';

const attrEscape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');

/** RFC 5262 §4: the whole document as <pidf-full version>. */
export function renderPidfFull(doc: PidfDocument, version: number): string {
  const presence = serializePidf(doc);
  // serializePidf writes <presence xmlns="…pidf" …>; the same element renamed, version added.
  const open = presence.indexOf('<presence');
  const head = presence.slice(0, open);
  const rest = presence.slice(open + '<presence'.length);
  const body = rest.endsWith('/>') ? rest : rest.replace(/<\/presence>\s*$/, '</p:pidf-full>');
  return `${head}<p:pidf-full xmlns:p="${NS.PIDF_DIFF}" version="${version}"${body}`;
}

interface Keyed {
  key: string;
  sel: string;
  el: XmlElement;
  text: string;
}

function keyed(doc: PidfDocument): Keyed[] {
  const one = (kind: string, sel: string, el: XmlElement, id: string): Keyed => ({ key: `${kind}|${id}`, sel: `*/${sel}[@id='${id}']`, el, text: serializeXml(el, { declaration: false }) });
  return [
    ...doc.tuples.map((t) => one('tuple', 'tuple', t.element, t.id)),
    ...doc.persons.map((p) => one('person', 'dm:person', p, p.attrs['id'] ?? '')),
    ...doc.devices.map((d) => one('device', 'dm:device', d, d.attrs['id'] ?? '')),
  ];
}

const sameNodes = (a: readonly XmlElement[], b: readonly XmlElement[]): boolean =>
  a.length === b.length && a.every((x, i) => serializeXml(x, { declaration: false }) === serializeXml(b[i]!, { declaration: false }));

/**
 * The patch that turns `prev` into `next` (RFC 5262 §4, RFC 5261 operations), or undefined when the
 * change is not one of identified elements (then full state is the answer). Ids in selectors are
 * xs:ID values (RFC 4479 §4), so they need no quoting beyond the apostrophes.
 */
export function diffPidf(prev: PidfDocument, next: PidfDocument, version: number): string | undefined {
  if (prev.entity !== next.entity || !sameNodes(prev.notes, next.notes) || !sameNodes(prev.extensions, next.extensions)) return undefined;
  const before = new Map(keyed(prev).map((k) => [k.key, k]));
  const after = keyed(next);
  if ([...before.values(), ...after].some((k) => /['"<&]/.test(k.key))) return undefined;
  const ops: string[] = [];
  for (const k of before.values()) if (!after.some((a) => a.key === k.key)) ops.push(`<p:remove sel="${attrEscape(k.sel)}"/>`);
  // New tuples go after the last tuple kept (tuples come first in PIDF, RFC 3863 §4.1), or first.
  let lastTuple = next.tuples.map((t) => t.id).filter((id) => before.has(`tuple|${id}`)).pop();
  for (const k of after) {
    const old = before.get(k.key);
    if (old) {
      if (old.text !== k.text) ops.push(`<p:replace sel="${attrEscape(k.sel)}">${k.text}</p:replace>`);
      continue;
    }
    if (k.key.startsWith('tuple|')) {
      ops.push(lastTuple ? `<p:add sel="${attrEscape(`*/tuple[@id='${lastTuple}']`)}" pos="after">${k.text}</p:add>` : `<p:add sel="*" pos="prepend">${k.text}</p:add>`);
      lastTuple = k.key.slice('tuple|'.length);
    } else ops.push(`<p:add sel="*">${k.text}</p:add>`);
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n<p:patch ${DIFF_PREFIXES} version="${version}">${ops.join('')}</p:patch>`;
}
