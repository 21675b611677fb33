// XCAP URIs below the XCAP root (RFC 4825 §6): the document selector
//   <auid>/users/<xui>/<document>   or   <auid>/global/<document>
// optionally followed by the separator segment "~~" and a node selector (§6.3), with the
// namespace prefixes of the node selector bound by xmlns() parts in the query (§6.4).
//
// The request path comes straight from the network, so every segment is percent-decoded strictly
// and refused if it could climb out of its directory or smuggle a separator: ".", "..", empty
// segments, an encoded "/" or "\", NUL and other control characters.
// Pure: no I/O.

import { NS } from '../formats/xml.js';

export class XcapPathError extends Error {
  constructor(readonly status: 400 | 404, message: string) {
    super(message);
    this.name = 'XcapPathError';
  }
}

export interface XcapPath {
  auid: string;
  scope: 'users' | 'global';
  /** The XCAP User Identifier, decoded (RFC 4825 §6.2); absent in the global tree. */
  xui?: string;
  /** 'global' or the XUI: the owner of the document. */
  owner: string;
  document: string;
  /** The node selector, percent-decoded; absent for a whole document. */
  nodeSelector?: string;
  /** The node selector exactly as it appeared in the request (for URIs in error bodies). */
  rawNodeSelector?: string;
  /** The document selector exactly as it appeared in the request, without the leading "/". */
  rawDocumentSelector: string;
  /** Prefix bindings from the query's xmlns() parts (RFC 4825 §6.4). */
  namespaces: ReadonlyMap<string, string>;
}

/** A name test of a step: a namespace-qualified name or "*" (RFC 4825 §6.3 NameorAny). */
export type NameTest = { any: true } | { any: false; ns: string; local: string };

export interface Step {
  name: NameTest;
  /** 1-based position among the parent's element children that pass the name test. */
  position?: number;
  /** Attribute test: attribute key as in XmlElement.attrs (local name, or "{ns}local"). */
  attr?: { key: string; value: string };
  /** The step as written, for building URIs of ancestors. */
  text: string;
}

export type TerminalSelector =
  | { kind: 'attribute'; key: string; text: string }
  | { kind: 'namespace' };

export interface NodeSelector { steps: Step[]; terminal?: TerminalSelector }

const MAX_PATH = 8192;
const MAX_SELECTOR = 4096;
const MAX_STEPS = 32;
const NCNAME = /^[\p{L}_][\p{L}\p{N}\p{M}_.\-\u00B7]*$/u;
const AUID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function decode(raw: string, what: string): string {
  if (/%(?![0-9A-Fa-f]{2})/.test(raw)) throw new XcapPathError(400, `malformed percent-encoding in ${what}`);
  let out: string;
  try {
    out = decodeURIComponent(raw);
  } catch {
    throw new XcapPathError(400, `${what} is not UTF-8`);
  }
  if (CONTROL.test(out)) throw new XcapPathError(400, `control character in ${what}`);
  return out;
}

/** One path segment of the document selector, decoded and checked. */
function segment(raw: string, what: string): string {
  if (raw === '') throw new XcapPathError(404, 'empty path segment');
  const s = decode(raw, what);
  if (s === '.' || s === '..') throw new XcapPathError(404, 'dot segment in path');
  if (s.includes('/') || s.includes('\\')) throw new XcapPathError(400, `encoded separator in ${what}`);
  return s;
}

/**
 * Parses the XPointer xmlns() scheme parts of the query (RFC 4825 §6.4, W3C xptr-xmlns):
 * `xmlns(p=urn:x)xmlns(q=urn:y)`, with ^-escaping of parentheses and circumflexes inside.
 */
export function parseNamespaceBindings(rawQuery: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (rawQuery === undefined || rawQuery === '') return out;
  const q = decode(rawQuery, 'query');
  let i = 0;
  while (i < q.length) {
    if (/\s/.test(q[i] as string)) { i++; continue; }
    if (!q.startsWith('xmlns(', i)) throw new XcapPathError(400, 'query is not a sequence of xmlns() parts');
    i += 6;
    let body = '';
    let closed = false;
    while (i < q.length) {
      const ch = q[i] as string;
      if (ch === '^') {
        const next = q[i + 1];
        if (next !== '(' && next !== ')' && next !== '^') throw new XcapPathError(400, 'bad ^ escape in xmlns()');
        body += next;
        i += 2;
        continue;
      }
      if (ch === '(') throw new XcapPathError(400, 'unescaped ( in xmlns()');
      i++;
      if (ch === ')') { closed = true; break; }
      body += ch;
    }
    if (!closed) throw new XcapPathError(400, 'unterminated xmlns()');
    const eq = body.indexOf('=');
    const prefix = eq === -1 ? '' : body.slice(0, eq).trim();
    const uri = eq === -1 ? '' : body.slice(eq + 1).trim();
    if (!NCNAME.test(prefix) || prefix.includes(':') || uri === '') throw new XcapPathError(400, 'bad xmlns() binding');
    if (prefix === 'xml' || prefix === 'xmlns') throw new XcapPathError(400, 'reserved prefix in xmlns()');
    if (out.size >= 32) throw new XcapPathError(400, 'too many xmlns() bindings');
    out.set(prefix, uri);
  }
  return out;
}

/**
 * Parses the part of a request path below the XCAP root ("/resource-lists/users/.../index/~~/...")
 * and its raw query string.
 */
export function parseXcapPath(rawPath: string, rawQuery?: string): XcapPath {
  if (rawPath.length > MAX_PATH) throw new XcapPathError(400, 'path too long');
  if (!rawPath.startsWith('/')) throw new XcapPathError(404, 'not below the XCAP root');
  const raw = rawPath.slice(1).split('/');
  // The separator is the first segment that is exactly "~~" (RFC 4825 §6); "~" is unreserved,
  // so its encoded form %7E%7E is the same segment (RFC 3986 §2.3).
  const sep = raw.findIndex((s) => s === '~~' || /^(~|%7[eE]){2}$/.test(s));
  const docRaw = sep === -1 ? raw : raw.slice(0, sep);
  const [auidRaw, scopeRaw] = docRaw;
  if (auidRaw === undefined || scopeRaw === undefined) throw new XcapPathError(404, 'incomplete document selector');
  const auid = segment(auidRaw, 'AUID');
  if (!AUID.test(auid)) throw new XcapPathError(404, 'unknown application usage');
  const scope = segment(scopeRaw, 'path');
  let xui: string | undefined;
  let document: string;
  if (scope === 'users') {
    // Documents sit directly in the user's home directory; Herald has no sub-directories.
    if (docRaw.length !== 4) throw new XcapPathError(404, 'no such document');
    xui = segment(docRaw[2] as string, 'XUI');
    document = segment(docRaw[3] as string, 'document name');
  } else if (scope === 'global') {
    if (docRaw.length !== 3) throw new XcapPathError(404, 'no such document');
    document = segment(docRaw[2] as string, 'document name');
  } else {
    throw new XcapPathError(404, 'the path below the AUID must be "users" or "global"');
  }
  const namespaces = parseNamespaceBindings(rawQuery);
  const result: XcapPath = {
    auid, scope, owner: xui ?? 'global', document, namespaces,
    rawDocumentSelector: docRaw.join('/'),
    ...(xui !== undefined ? { xui } : {}),
  };
  if (sep !== -1) {
    const rawSel = raw.slice(sep + 1).join('/');
    if (rawSel === '') throw new XcapPathError(400, 'empty node selector');
    if (rawSel.length > MAX_SELECTOR) throw new XcapPathError(400, 'node selector too long');
    result.rawNodeSelector = rawSel;
    result.nodeSelector = decode(rawSel, 'node selector');
  }
  return result;
}

function resolveQName(qname: string, namespaces: ReadonlyMap<string, string>, defaultNs: string | undefined): { ns: string; local: string } {
  const colon = qname.indexOf(':');
  if (colon === -1) {
    if (!NCNAME.test(qname)) throw new XcapPathError(400, 'invalid name in node selector');
    // RFC 4825 §6.3: unprefixed element names are in the application usage's default document
    // namespace (§5.2); unprefixed attribute names are in no namespace, as in XML.
    return { ns: defaultNs ?? '', local: qname };
  }
  const prefix = qname.slice(0, colon);
  const local = qname.slice(colon + 1);
  if (!NCNAME.test(prefix) || !NCNAME.test(local) || local.includes(':')) throw new XcapPathError(400, 'invalid qualified name in node selector');
  if (prefix === 'xml') return { ns: NS.XML, local };
  const ns = namespaces.get(prefix);
  if (ns === undefined) throw new XcapPathError(400, `prefix "${prefix}" is not bound by an xmlns() query part`);
  return { ns, local };
}

function attrKey(qname: string, namespaces: ReadonlyMap<string, string>): string {
  const { ns, local } = resolveQName(qname, namespaces, undefined);
  return ns === '' ? local : `{${ns}}${local}`;
}

/** Decodes an XML AttValue's references (XML 1.0 §2.4, §4.1): the predefined entities and character references. */
function decodeAttValue(s: string): string {
  if (s.includes('<')) throw new XcapPathError(400, '"<" in an attribute value of the node selector');
  return s.replace(/&([^;&]{0,12});?/g, (m, ref: string) => {
    if (!m.endsWith(';')) throw new XcapPathError(400, 'bare "&" in an attribute value of the node selector');
    const named: Record<string, string> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };
    if (Object.prototype.hasOwnProperty.call(named, ref)) return named[ref] as string;
    const num = /^#x([0-9A-Fa-f]{1,6})$/.exec(ref) ?? /^#([0-9]{1,7})$/.exec(ref);
    if (num) {
      const cp = parseInt(num[1] as string, ref[1] === 'x' ? 16 : 10);
      if (cp >= 0x20 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) return String.fromCodePoint(cp);
    }
    throw new XcapPathError(400, 'bad reference in an attribute value of the node selector');
  });
}

/** Splits on "/" outside brackets and quotes: attribute values may contain "/" (RFC 4825 §6.3 att-value). */
function splitSteps(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  let quote = '';
  for (const ch of text) {
    if (quote !== '') {
      if (ch === quote) quote = '';
    } else if (ch === '"' || ch === "'") {
      if (depth === 0) throw new XcapPathError(400, 'quote outside a predicate in the node selector');
      quote = ch;
    } else if (ch === '[') {
      if (depth > 0) throw new XcapPathError(400, 'nested predicate in the node selector');
      depth++;
    } else if (ch === ']') {
      if (depth === 0) throw new XcapPathError(400, 'unbalanced "]" in the node selector');
      depth--;
    } else if (ch === '/' && depth === 0) {
      out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  if (quote !== '' || depth !== 0) throw new XcapPathError(400, 'unterminated predicate in the node selector');
  out.push(cur);
  return out;
}

function parseStep(text: string, namespaces: ReadonlyMap<string, string>, defaultNs: string): Step {
  const open = text.indexOf('[');
  const nameText = open === -1 ? text : text.slice(0, open);
  const name: NameTest = nameText === '*' ? { any: true } : { any: false, ...resolveQName(nameText, namespaces, defaultNs) };
  const step: Step = { name, text };
  let rest = open === -1 ? '' : text.slice(open);
  // RFC 4825 §6.3: by-pos "[n]", by-attr "[@a=v]", by-pos-attr "[n][@a=v]", in that order only.
  const pos = /^\[([0-9]{1,7})\]/.exec(rest);
  if (pos) {
    const n = Number(pos[1]);
    if (n < 1) throw new XcapPathError(400, 'positions in the node selector start at 1');
    step.position = n;
    rest = rest.slice(pos[0].length);
  }
  const attr = /^\[@([^=\]\s]+)=("([^"]*)"|'([^']*)')\]/.exec(rest);
  if (attr) {
    step.attr = { key: attrKey(attr[1] as string, namespaces), value: decodeAttValue(attr[3] ?? attr[4] ?? '') };
    rest = rest.slice(attr[0].length);
  }
  if (rest !== '') throw new XcapPathError(400, 'unsupported predicate in the node selector');
  return step;
}

/**
 * Parses a (decoded) node selector (RFC 4825 §6.3) into steps and an optional terminal selector:
 * an attribute selector "@name" or the namespace selector "namespace::*". Extension selectors
 * are not supported (400).
 */
export function parseNodeSelector(text: string, defaultNs: string, namespaces: ReadonlyMap<string, string> = new Map()): NodeSelector {
  if (text.length > MAX_SELECTOR) throw new XcapPathError(400, 'node selector too long');
  const parts = splitSteps(text);
  if (parts.length > MAX_STEPS + 1) throw new XcapPathError(400, 'node selector too deep');
  let terminal: TerminalSelector | undefined;
  const last = parts[parts.length - 1] as string;
  if (parts.length > 1 && last.startsWith('@')) {
    terminal = { kind: 'attribute', key: attrKey(last.slice(1), namespaces), text: last };
    parts.pop();
  } else if (parts.length > 1 && last === 'namespace::*') {
    terminal = { kind: 'namespace' };
    parts.pop();
  }
  if (parts.length > MAX_STEPS) throw new XcapPathError(400, 'node selector too deep');
  const steps = parts.map((p) => {
    if (p === '') throw new XcapPathError(400, 'empty step in the node selector');
    return parseStep(p, namespaces, defaultNs);
  });
  return terminal === undefined ? { steps } : { steps, terminal };
}
