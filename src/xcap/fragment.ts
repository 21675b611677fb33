// The bodies of element and attribute resources (RFC 4825 §8.2.3–8.2.4, §8.3, §15.2):
// application/xcap-el+xml (one element, its namespace prefixes resolved in the context of the
// document where it goes), application/xcap-att+xml (an attribute value as written between the
// quotes of an AttValue) and application/xcap-ns+xml (the namespace selector's answer).
// Pure: no I/O.

import { XmlError, parseXml, serializeXml, type XmlElement } from '../formats/xml.js';
import { conflict } from './errors.js';

/** In-scope namespace bindings for parsing a fragment: '' is the default namespace. */
export type NamespaceContext = ReadonlyMap<string, string>;

function decodeRefs(s: string): string {
  const named: Record<string, string> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };
  return s.replace(/&(#x[0-9A-Fa-f]+|#[0-9]+|lt|gt|amp|apos|quot);/g, (_m, r: string) =>
    r.startsWith('#x') ? String.fromCodePoint(parseInt(r.slice(2), 16)) : r.startsWith('#') ? String.fromCodePoint(Number(r.slice(1))) : named[r] as string);
}

/** The text of the root element's start tag, skipping the prolog (declaration, PIs, comments). */
function rootStartTag(doc: string): string | undefined {
  let i = 0;
  for (;;) {
    i = doc.indexOf('<', i);
    if (i === -1) return undefined;
    if (doc.startsWith('<?', i)) { i = doc.indexOf('?>', i); if (i === -1) return undefined; continue; }
    if (doc.startsWith('<!--', i)) { i = doc.indexOf('-->', i); if (i === -1) return undefined; continue; }
    break;
  }
  let quote = '';
  for (let j = i + 1; j < doc.length; j++) {
    const ch = doc[j];
    if (quote !== '') { if (ch === quote) quote = ''; continue; }
    if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '>') return doc.slice(i, j + 1);
  }
  return undefined;
}

/**
 * The namespace bindings declared on the root element of a stored (already well-formed) document,
 * over the usage's conventional prefixes. RFC 4825 §8.2.3 has the prefixes of a PUT element
 * interpreted in the document's context; documents declare their namespaces on the root.
 */
export function rootNamespaceContext(doc: string, root: XmlElement, conventional: Readonly<Record<string, string>>): NamespaceContext {
  const out = new Map<string, string>();
  for (const [ns, prefix] of Object.entries(conventional)) out.set(prefix, ns);
  out.set('', root.ns);
  const tag = rootStartTag(doc) ?? '';
  for (const m of tag.matchAll(/\sxmlns(?::([^\s=/>]+))?\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
    out.set(m[1] ?? '', decodeRefs(m[2] ?? m[3] ?? ''));
  }
  return out;
}

function attrEscape(v: string): string {
  return v.replace(/[&<>"'\t\n\r]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Parses an xcap-el+xml body: exactly one element, nothing but whitespace around it. It is parsed
 * inside a wrapper element that declares the document's bindings, so an unprefixed <entry> means
 * what it would mean in the document. Any attempt to close the wrapper early leaves a second root
 * and fails to parse. Failure is 409 <not-xml-frag> (RFC 4825 §11.2).
 */
export function parseElementFragment(body: string, context: NamespaceContext, maxBytes: number): XmlElement {
  const text = body.replace(/^\uFEFF/, '').replace(/^\s*<\?xml\s[^>]*\?>/, '');
  let decls = '';
  for (const [prefix, ns] of context) {
    if (prefix === '' || !/^[A-Za-z_][\w.-]*$/.test(prefix)) continue;
    decls += ` xmlns:${prefix}="${attrEscape(ns)}"`;
  }
  const defaultNs = context.get('') ?? '';
  const wrapped = `<herald-fragment xmlns="${attrEscape(defaultNs)}"${decls}>${text}</herald-fragment>`;
  let wrapper: XmlElement;
  try {
    wrapper = parseXml(wrapped, { maxBytes: maxBytes + wrapped.length - text.length });
  } catch (e) {
    if (e instanceof XmlError && /UTF-8/.test(e.message)) throw conflict({ kind: 'not-utf-8' });
    throw conflict({ kind: 'not-xml-frag', phrase: e instanceof Error ? e.message : 'not an XML element' });
  }
  const elements = wrapper.children.filter((c): c is XmlElement => typeof c !== 'string');
  const text2 = wrapper.children.filter((c): c is string => typeof c === 'string').join('');
  const only = elements[0];
  if (elements.length !== 1 || only === undefined || text2.trim() !== '') {
    throw conflict({ kind: 'not-xml-frag', phrase: 'the body must be exactly one XML element' });
  }
  return only;
}

/** Parses an xcap-att+xml body: the AttValue production without its quotes (XML 1.0 §2.3). */
export function parseAttributeValue(body: string): string {
  if (body.includes('"') || body.includes('<')) throw conflict({ kind: 'not-xml-att-value' });
  try {
    const el = parseXml(`<a v="${body}"/>`, { maxBytes: body.length * 3 + 16, maxDepth: 1, maxElements: 1 });
    return el.attrs['v'] ?? '';
  } catch {
    throw conflict({ kind: 'not-xml-att-value' });
  }
}

/** An attribute value as the body of a GET (RFC 4825 §8.3): escaped so that it is a valid AttValue. */
export function attributeBody(value: string): string {
  return attrEscape(value);
}

/** An element as the body of a GET: a standalone fragment carrying the namespace declarations it needs. */
export function elementBody(el: XmlElement): string {
  return serializeXml(el, { declaration: false });
}

/**
 * The namespace selector's answer (RFC 4825 §6.3, §8.3): the selected element, empty, with the
 * namespace bindings needed to read it and its content. Taken from the start tag our own
 * serializer writes, where attribute values never contain ">".
 */
export function namespaceBody(el: XmlElement): string {
  const full = elementBody(el);
  const tag = full.slice(0, full.indexOf('>') + 1);
  const name = /^<([^\s/>]+)/.exec(tag)?.[1] ?? el.name;
  const decls = [...tag.matchAll(/\sxmlns(?::[^\s=]+)?="[^"]*"/g)].map((m) => m[0]).join('');
  return `<${name}${decls}/>`;
}
