// A small namespace-aware XML tree for presence documents, hardened for bytes that arrive
// straight from the network (PUBLISH and NOTIFY bodies, XCAP PUTs).
//
// Tokenizing is done by fast-xml-parser (its validator for well-formedness, then XMLParser
// with preserveOrder). Everything the library does not do for us is done here, on the raw
// text or on its output:
//   * the DOCTYPE/ENTITY ban is a check of the raw text, before any parser sees it, so no
//     entity is ever declared, let alone expanded (billion laughs, XXE);
//   * entity references are decoded by our own decoder: only the five predefined entities
//     and character references (XML 1.0 §4.1, §4.6); anything else is an error;
//   * namespaces (Namespaces in XML 1.0 §5–6) are resolved here; the library only sees
//     qualified names;
//   * size, depth and element-count limits, illegal characters and U+FFFD.
// Pure: no I/O, no clock.

import { XMLParser, XMLValidator } from 'fast-xml-parser';

export interface XmlElement { ns: string; name: string; attrs: Record<string, string>; children: XmlNode[] }
/** A text node is a plain string, entities already decoded. */
export type XmlNode = XmlElement | string;

/**
 * Reduce any text to something usable as a SIP reason phrase: printable ASCII only,
 * no CR/LF, at most `max` characters.
 */
export function toReasonPhrase(text: string, max = 100): string {
  let out = '';
  for (const ch of text) {
    const c = ch.codePointAt(0) ?? 0x3f;
    out += c >= 0x20 && c <= 0x7e ? ch : c === 0x09 || c === 0x0a || c === 0x0d ? ' ' : '?';
  }
  out = out.replace(/ {2,}/g, ' ').trim();
  return out.length > max ? out.slice(0, max - 3) + '...' : out;
}

/** Every XML failure. The message is safe to use as a SIP reason phrase (ASCII, no CR/LF, <= 100 chars). */
export class XmlError extends Error {
  constructor(message: string) {
    super(toReasonPhrase(message));
    this.name = 'XmlError';
  }
}

export interface XmlLimits { maxBytes: number; maxDepth: number; maxElements: number }
export const DEFAULT_XML_LIMITS: XmlLimits = Object.freeze({ maxBytes: 65536, maxDepth: 32, maxElements: 10000 });

export const NS = {
  PIDF: 'urn:ietf:params:xml:ns:pidf',
  DM: 'urn:ietf:params:xml:ns:pidf:data-model',
  RPID: 'urn:ietf:params:xml:ns:pidf:rpid',
  CIPID: 'urn:ietf:params:xml:ns:pidf:cipid',
  CAPS: 'urn:ietf:params:xml:ns:pidf:caps',
  TIMED_STATUS: 'urn:ietf:params:xml:ns:pidf:timed-status',
  GEOPRIV: 'urn:ietf:params:xml:ns:pidf:geopriv10',
  GEOPRIV_BASIC_POLICY: 'urn:ietf:params:xml:ns:pidf:geopriv10:basicPolicy',
  GML: 'http://www.opengis.net/gml',
  OMA_PRES: 'urn:oma:xml:prs:pidf:oma-pres',
  PIDF_DIFF: 'urn:ietf:params:xml:ns:pidf-diff',
  CPIM_PIDF: 'urn:ietf:params:xml:ns:cpim-pidf',
  RLMI: 'urn:ietf:params:xml:ns:rlmi',
  WATCHERINFO: 'urn:ietf:params:xml:ns:watcherinfo',
  RESOURCE_LISTS: 'urn:ietf:params:xml:ns:resource-lists',
  RLS_SERVICES: 'urn:ietf:params:xml:ns:rls-services',
  COMMON_POLICY: 'urn:ietf:params:xml:ns:common-policy',
  PRES_RULES: 'urn:ietf:params:xml:ns:pres-rules',
  /** Herald's IM rules actions (the im-rules application usage, src/xcap/usage-im-rules.ts). */
  IM_RULES: 'urn:herald:params:xml:ns:im-rules',
  XCAP_ERROR: 'urn:ietf:params:xml:ns:xcap-error',
  XCAP_CAPS: 'urn:ietf:params:xml:ns:xcap-caps',
  XML: 'http://www.w3.org/XML/1998/namespace',
  XMLNS: 'http://www.w3.org/2000/xmlns/',
} as const;

/** Conventional prefixes (as in the RFC examples) used by serializeXml for non-root namespaces. */
const KNOWN_PREFIXES: Readonly<Record<string, string>> = {
  [NS.PIDF]: 'pidf',
  [NS.DM]: 'dm',
  [NS.RPID]: 'rpid',
  [NS.CIPID]: 'c',
  [NS.CAPS]: 'caps',
  [NS.TIMED_STATUS]: 'ts',
  [NS.GEOPRIV]: 'gp',
  [NS.GEOPRIV_BASIC_POLICY]: 'gbp',
  [NS.GML]: 'gml',
  [NS.OMA_PRES]: 'op',
  [NS.PIDF_DIFF]: 'pd',
  [NS.RLMI]: 'rlmi',
  [NS.WATCHERINFO]: 'wi',
  [NS.RESOURCE_LISTS]: 'rl',
  [NS.RLS_SERVICES]: 'rls',
  [NS.COMMON_POLICY]: 'cp',
  [NS.PRES_RULES]: 'pr',
  [NS.IM_RULES]: 'im',
  [NS.XCAP_ERROR]: 'xe',
  [NS.XCAP_CAPS]: 'xc',
};

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/** Library-internal tag names are prefixed so that no XML name can collide with the keys
 *  fast-xml-parser uses itself ('#text', ':@') or trip its prototype-pollution guard
 *  (an element legitimately named "constructor" would otherwise be rejected). */
const TAG_MARK = '~';
const ATTR_PREFIX = '@_';
const TEXT_KEY = '#text';
const ATTRS_KEY = ':@';

const PREDEFINED: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };

function isXmlChar(cp: number): boolean {
  // XML 1.0 §2.2 Char production.
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

/** Decodes the five predefined entities and character references; anything else throws.
 *  The regex is linear: each '&' starts at most one bounded match. */
function decodeEntities(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&([^&;]{0,32})(;?)/g, (_m, ref: string, semi: string) => {
    if (semi !== ';') throw new XmlError('malformed XML: bad entity reference');
    if (ref.startsWith('#')) {
      const hex = ref[1] === 'x';
      const digits = ref.slice(hex ? 2 : 1);
      if (!(hex ? /^[0-9a-fA-F]{1,8}$/ : /^[0-9]{1,10}$/).test(digits)) {
        throw new XmlError('malformed XML: bad character reference');
      }
      const cp = parseInt(digits, hex ? 16 : 10);
      if (!isXmlChar(cp)) throw new XmlError('malformed XML: character reference to an illegal character');
      return String.fromCodePoint(cp);
    }
    const v = PREDEFINED[ref];
    if (v === undefined || !Object.prototype.hasOwnProperty.call(PREDEFINED, ref)) {
      throw new XmlError('undefined entity reference (only the XML predefined entities are allowed)');
    }
    return v;
  });
}

/** fast-xml-parser's pluggable decoder, reduced to what XML itself defines. */
const entityDecoder = {
  setExternalEntities: (): void => { /* never any */ },
  addInputEntities: (): void => {
    // Only reachable with a DOCTYPE, which preflight() has already refused.
    throw new XmlError('DOCTYPE and ENTITY declarations are not allowed');
  },
  reset: (): void => { /* stateless */ },
  decode: decodeEntities,
  setXmlVersion: (): void => { /* XML 1.0 rules are applied regardless */ },
};

/**
 * One parser per depth limit, made once: the library builds its options in the constructor (a
 * measurable share of a small PUBLISH's parse when done per document) and keeps no state between
 * parse() calls (each makes its own OrderedObjParser; no entities are ever added).
 */
const parsers = new Map<number, XMLParser>();

function parserFor(maxDepth: number): XMLParser {
  let p = parsers.get(maxDepth);
  if (p === undefined) {
    // Depth limits are a handful of constants; bounded all the same.
    if (parsers.size >= 16) parsers.clear();
    p = makeParser(maxDepth);
    parsers.set(maxDepth, p);
  }
  return p;
}

function makeParser(maxDepth: number): XMLParser {
  return new XMLParser({
    preserveOrder: true,
    ignoreAttributes: false,
    attributeNamePrefix: ATTR_PREFIX,
    textNodeName: TEXT_KEY,
    removeNSPrefix: false,
    allowBooleanAttributes: false,
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: false,
    ignoreDeclaration: true,
    ignorePiTags: true,
    commentPropName: false,
    cdataPropName: false,
    processEntities: true,
    entityDecoder,
    transformTagName: (name: string) => TAG_MARK + name,
    // The library's own guard against deep nesting; ours in convert() is exact.
    maxNestedTags: maxDepth,
    onDangerousProperty: (name: string) => name,
  });
}

/**
 * Checks on the raw text, before any parser sees it: size in UTF-8 bytes, characters that are
 * not XML (C0 controls, lone surrogates, U+FFFE/U+FFFF), U+FFFD as the mark of undecodable bytes,
 * and any markup declaration (`<!DOCTYPE`, `<!ENTITY`, `<!ELEMENT`...). Only comments and CDATA
 * may start with `<!`. This deliberately also refuses "<!DOCTYPE" written inside a comment or CDATA
 * section: no presence document needs that and the check stays a single linear scan.
 */
function preflight(text: string, limits: XmlLimits): void {
  // A UTF-16 code unit never encodes to fewer than one UTF-8 byte: cheap early reject.
  if (text.length > limits.maxBytes) throw new XmlError(`XML body too large (limit ${limits.maxBytes} bytes)`);
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      if (c < 0x20 && c !== 0x9 && c !== 0xa && c !== 0xd) throw new XmlError('malformed XML: illegal control character');
      bytes += 1;
    } else if (c < 0x800) {
      bytes += 2;
    } else if (c >= 0xd800 && c <= 0xdbff) {
      const d = text.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) throw new XmlError('malformed XML: invalid character');
      bytes += 4;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      throw new XmlError('malformed XML: invalid character');
    } else if (c === 0xfffd) {
      // The caller decodes with a non-fatal TextDecoder; U+FFFD means the bytes were not UTF-8.
      throw new XmlError('body is not valid UTF-8');
    } else if (c === 0xfffe || c === 0xffff) {
      throw new XmlError('malformed XML: invalid character');
    } else {
      bytes += 3;
    }
  }
  if (bytes > limits.maxBytes) throw new XmlError(`XML body too large (limit ${limits.maxBytes} bytes)`);

  for (let i = text.indexOf('<!'); i !== -1; i = text.indexOf('<!', i + 2)) {
    if (text.startsWith('--', i + 2) || text.startsWith('[CDATA[', i + 2)) continue;
    const word = text.slice(i + 2, i + 9).toUpperCase();
    if (word.startsWith('DOCTYPE') || word.startsWith('ENTITY')) {
      throw new XmlError('DOCTYPE and ENTITY declarations are not allowed');
    }
    throw new XmlError('malformed XML: markup declarations are not allowed');
  }
}

/** Namespace bindings (prefix -> URI; '' is the default namespace), chained to the parent's
 *  rather than copied, so many declarations on many elements stay linear. Lookups walk at most
 *  maxDepth links. */
interface Scope { readonly bindings: ReadonlyMap<string, string>; readonly parent: Scope | undefined }

function lookup(scope: Scope | undefined, prefix: string): string | undefined {
  for (let s = scope; s !== undefined; s = s.parent) {
    const uri = s.bindings.get(prefix);
    if (uri !== undefined) return uri;
  }
  return undefined;
}

interface Frame { src: readonly unknown[]; index: number; el: XmlElement; scope: Scope; depth: number; hasText: boolean }

const NCNAME = /^[\p{L}_][\p{L}\p{N}\p{M}_.\-\u00B7]*$/u;

function splitQName(qname: string): [prefix: string | undefined, local: string] {
  const colon = qname.indexOf(':');
  if (colon === -1) {
    if (!NCNAME.test(qname)) throw new XmlError('malformed XML: invalid name');
    return [undefined, qname];
  }
  const prefix = qname.slice(0, colon);
  const local = qname.slice(colon + 1);
  if (!NCNAME.test(prefix) || !NCNAME.test(local)) throw new XmlError('malformed XML: invalid qualified name');
  return [prefix, local];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Builds one XmlElement (without children) from a library node, resolving namespaces. */
function openElement(tagKey: string, node: Record<string, unknown>, parentScope: Scope): { el: XmlElement; scope: Scope } {
  // Strip every mark: the library applies transformTagName twice to self-closing tags.
  let start = 0;
  while (tagKey.startsWith(TAG_MARK, start)) start += TAG_MARK.length;
  const qname = tagKey.slice(start);
  const rawAttrs = node[ATTRS_KEY];
  const plain: Array<[string, string]> = [];
  let bindings: Map<string, string> | undefined;
  if (isRecord(rawAttrs)) {
    for (const key of Object.keys(rawAttrs)) {
      const value = rawAttrs[key];
      if (typeof value !== 'string' || !key.startsWith(ATTR_PREFIX)) throw new XmlError('malformed XML: bad attribute');
      const aname = key.slice(ATTR_PREFIX.length);
      if (aname === 'xmlns' || aname.startsWith('xmlns:')) {
        const prefix = aname === 'xmlns' ? '' : aname.slice(6);
        // Namespaces in XML 1.0 §3: xml may only be bound to its own URI, xmlns never;
        // no other prefix may take either URI; a prefixed declaration cannot be empty (1.0 has no undeclaring).
        if (prefix !== '' && !NCNAME.test(prefix)) throw new XmlError('malformed XML: invalid namespace prefix');
        if (prefix === 'xmlns') throw new XmlError('malformed XML: the xmlns prefix cannot be declared');
        if ((prefix === 'xml') !== (value === NS.XML)) throw new XmlError('malformed XML: misuse of the xml namespace');
        if (value === NS.XMLNS) throw new XmlError('malformed XML: misuse of the xmlns namespace');
        if (prefix !== '' && value === '') throw new XmlError('malformed XML: empty namespace declaration');
        bindings ??= new Map();
        bindings.set(prefix, value);
      } else {
        plain.push([aname, value]);
      }
    }
  }
  const scope: Scope = bindings === undefined ? parentScope : { bindings, parent: parentScope };
  const resolve = (prefix: string): string => {
    if (prefix === 'xml') return NS.XML;
    const uri = lookup(scope, prefix);
    if (uri === undefined) throw new XmlError('unbound namespace prefix');
    return uri;
  };
  const [prefix, name] = splitQName(qname);
  const ns = prefix === undefined ? (lookup(scope, '') ?? '') : resolve(prefix);
  const attrs: Record<string, string> = {};
  for (const [aname, value] of plain) {
    const [ap, local] = splitQName(aname);
    // Unprefixed attributes are in no namespace (Namespaces in XML §6.2), whatever the default is.
    const key = ap === undefined ? local : `{${resolve(ap)}}${local}`;
    if (Object.prototype.hasOwnProperty.call(attrs, key)) throw new XmlError('malformed XML: duplicate attribute');
    // defineProperty, so an attribute called __proto__ is kept as data rather than lost to the setter.
    Object.defineProperty(attrs, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return { el: { ns, name, attrs, children: [] }, scope };
}

function tagKeyOf(node: Record<string, unknown>): string | undefined {
  for (const key of Object.keys(node)) if (key.startsWith(TAG_MARK)) return key;
  return undefined;
}

/** Whitespace-only text is dropped unless its element also has real text (mixed content). */
function finishElement(el: XmlElement, hasText: boolean): void {
  if (!hasText) el.children = el.children.filter((c) => typeof c !== 'string');
}

function isBlank(s: string): boolean {
  return /^[ \t\r\n]*$/.test(s);
}

/**
 * Converts the library's ordered output into XmlElements. Iterative, so no input can exhaust
 * the call stack whatever limits the caller chose.
 */
function convert(top: readonly unknown[], limits: XmlLimits): XmlElement {
  // The validator misses a second root or text after a self-closing root ("<a/><b/>", "<a/>x").
  let rootNode: Record<string, unknown> | undefined;
  for (const n of top) {
    if (!isRecord(n)) throw new XmlError('malformed XML');
    const text = n[TEXT_KEY];
    if (typeof text === 'string') {
      if (!isBlank(text)) throw new XmlError('malformed XML: text outside the root element');
    } else if (tagKeyOf(n) !== undefined) {
      if (rootNode !== undefined) throw new XmlError('malformed XML: more than one root element');
      rootNode = n;
    }
  }
  if (rootNode === undefined) throw new XmlError('malformed XML: no root element');
  const rootKey = tagKeyOf(rootNode) as string;
  const base: Scope = { bindings: new Map(), parent: undefined };
  const first = openElement(rootKey, rootNode, base);
  let elements = 1;
  const stack: Frame[] = [{ src: asArray(rootNode[rootKey]), index: 0, el: first.el, scope: first.scope, depth: 1, hasText: false }];
  if (limits.maxDepth < 1) throw new XmlError(`XML nested too deeply (limit ${limits.maxDepth})`);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1] as Frame;
    if (frame.index >= frame.src.length) {
      finishElement(frame.el, frame.hasText);
      stack.pop();
      continue;
    }
    const node = frame.src[frame.index++];
    if (!isRecord(node)) throw new XmlError('malformed XML');
    if (Object.prototype.hasOwnProperty.call(node, TEXT_KEY)) {
      const text = node[TEXT_KEY];
      if (typeof text !== 'string') throw new XmlError('malformed XML');
      if (text === '') continue;
      const kids = frame.el.children;
      const last = kids[kids.length - 1];
      // Adjacent text (e.g. text next to a CDATA section) becomes one node, so a
      // serialize/parse round trip is stable.
      if (typeof last === 'string') kids[kids.length - 1] = last + text;
      else kids.push(text);
      if (!isBlank(text)) frame.hasText = true;
      continue;
    }
    const key = tagKeyOf(node);
    if (key === undefined) continue; // comments and PIs are not kept
    if (++elements > limits.maxElements) throw new XmlError(`too many XML elements (limit ${limits.maxElements})`);
    if (frame.depth + 1 > limits.maxDepth) throw new XmlError(`XML nested too deeply (limit ${limits.maxDepth})`);
    const child = openElement(key, node, frame.scope);
    frame.el.children.push(child.el);
    stack.push({ src: asArray(node[key]), index: 0, el: child.el, scope: child.scope, depth: frame.depth + 1, hasText: false });
  }
  return first.el;
}

function asArray(v: unknown): readonly unknown[] {
  if (!Array.isArray(v)) throw new XmlError('malformed XML');
  return v;
}

/** The validator's messages quote the offending input; a reason phrase should not echo it. */
function describeInvalid(code: string, msg: string): string {
  if (msg.startsWith('Expected closing tag')) return 'mismatched closing tag';
  if (msg.startsWith('Unclosed tag') || msg.startsWith("Invalid '[")) return 'unclosed tag';
  if (msg.includes('has not been opened')) return 'closing tag without opening tag';
  if (msg.includes('is repeated')) return 'duplicate attribute';
  if (msg.startsWith('Extra text') || msg.startsWith('Multiple possible root')) return 'content after the root element';
  if (msg.startsWith('Start tag expected')) return 'no root element';
  switch (code) {
    case 'InvalidTag': return 'invalid tag';
    case 'InvalidAttr': return 'invalid attribute';
    case 'InvalidChar': return 'unexpected character';
    default: return 'not well-formed';
  }
}

/**
 * Parses a complete XML document and returns its root element. Throws XmlError on anything
 * malformed or hostile; see the file comment for what is refused.
 */
export function parseXml(text: string, limits?: Partial<XmlLimits>): XmlElement {
  const lim: XmlLimits = {
    maxBytes: limits?.maxBytes ?? DEFAULT_XML_LIMITS.maxBytes,
    maxDepth: limits?.maxDepth ?? DEFAULT_XML_LIMITS.maxDepth,
    maxElements: limits?.maxElements ?? DEFAULT_XML_LIMITS.maxElements,
  };
  if (typeof text !== 'string') throw new XmlError('XML body is not text');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // byte order mark
  preflight(text, lim);
  const valid = XMLValidator.validate(text, { allowBooleanAttributes: false });
  if (valid !== true) throw new XmlError(`malformed XML: ${describeInvalid(valid.err.code, valid.err.msg)}`);
  // The validator stops checking what follows a self-closing root element ("<a/>junk");
  // the library then silently drops it. Refuse trailing text; text squeezed between such a root
  // and a trailing comment or PI is still ignored, which is harmless.
  if (!isBlank(text.slice(text.lastIndexOf('>') + 1))) throw new XmlError('malformed XML: text after the root element');
  let out: unknown;
  try {
    out = parserFor(lim.maxDepth).parse(text);
  } catch (e) {
    if (e instanceof XmlError) throw e;
    const msg = e instanceof Error ? e.message : '';
    if (/nested/i.test(msg)) throw new XmlError(`XML nested too deeply (limit ${lim.maxDepth})`);
    throw new XmlError('malformed XML');
  }
  return convert(asArray(out), lim);
}

// ---------------------------------------------------------------------------------------------
// Serializing
// ---------------------------------------------------------------------------------------------

const ATTR_KEY = /^\{([^}]*)\}(.+)$/;

export function escapeXml(s: string, inAttr: boolean): string {
  let out = '';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let rep: string | undefined;
    if (c === 0x26) rep = '&amp;';
    else if (c === 0x3c) rep = '&lt;';
    else if (c === 0x3e) rep = '&gt;';
    else if (c === 0x22) rep = '&quot;';
    // CR would be turned into LF by any parser (XML §2.11); TAB/LF inside an attribute would
    // be normalized to a space (§3.3.3). Character references survive both.
    else if (c === 0x0d) rep = '&#13;';
    else if (inAttr && c === 0x0a) rep = '&#10;';
    else if (inAttr && c === 0x09) rep = '&#9;';
    else if (c < 0x20 && c !== 0x09 && c !== 0x0a) rep = ''; // not representable in XML 1.0: dropped
    else if (c === 0xfffe || c === 0xffff) rep = '';
    // Written as a reference because our own parser reads a literal U+FFFD as "bad UTF-8".
    else if (c === 0xfffd) rep = '&#xFFFD;';
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) { i++; continue; }
      rep = ''; // lone surrogate: not a character
    } else if (c >= 0xdc00 && c <= 0xdfff) rep = '';
    if (rep !== undefined) {
      out += s.slice(start, i) + rep;
      start = i + 1;
    }
  }
  return start === 0 ? s : out + s.slice(start);
}

function checkName(name: string): string {
  if (!NCNAME.test(name)) throw new XmlError('cannot serialize: invalid XML name');
  return name;
}

function isUsablePrefix(p: string): boolean {
  return NCNAME.test(p) && !p.toLowerCase().startsWith('xml');
}

/**
 * Serializes a tree. The root's namespace is the default namespace; every other namespace gets
 * a prefix (opts.prefixes, then conventional ones, then ns1, ns2...) declared on the root, in
 * order of first appearance, so the output is deterministic. No whitespace is added.
 */
export function serializeXml(root: XmlElement, opts?: { prefixes?: Record<string, string>; declaration?: boolean }): string {
  // Pass 1: namespaces in document order, noting which ones need a prefix.
  const order: string[] = [];
  const needsPrefix = new Set<string>();
  const seen = new Set<string>();
  const note = (ns: string, forAttr: boolean): void => {
    if (ns === '' || ns === NS.XML) return;
    if (!seen.has(ns)) { seen.add(ns); order.push(ns); }
    // Attributes never take the default namespace, so even the root namespace needs a prefix there.
    if (forAttr || ns !== root.ns) needsPrefix.add(ns);
  };
  const walk: XmlElement[] = [root];
  while (walk.length > 0) {
    const el = walk.pop() as XmlElement;
    note(el.ns, false);
    for (const key of Object.keys(el.attrs)) {
      const m = ATTR_KEY.exec(key);
      if (m) note(m[1] as string, true);
    }
    for (let i = el.children.length - 1; i >= 0; i--) {
      const c = el.children[i];
      if (typeof c !== 'string' && c !== undefined) walk.push(c);
    }
  }
  // Pass 2: prefixes; explicit and conventional ones first so generated ones never collide.
  const prefixOf = new Map<string, string>();
  const used = new Set<string>();
  for (const ns of order) {
    if (!needsPrefix.has(ns)) continue;
    const wanted = opts?.prefixes?.[ns] ?? KNOWN_PREFIXES[ns];
    if (wanted !== undefined && isUsablePrefix(wanted) && !used.has(wanted)) {
      prefixOf.set(ns, wanted);
      used.add(wanted);
    }
  }
  let counter = 1;
  for (const ns of order) {
    if (!needsPrefix.has(ns) || prefixOf.has(ns)) continue;
    while (used.has(`ns${counter}`)) counter++;
    prefixOf.set(ns, `ns${counter}`);
    used.add(`ns${counter}`);
  }

  const rootDecls: string[] = [];
  if (root.ns !== '') rootDecls.push(` xmlns="${escapeXml(root.ns, true)}"`);
  for (const ns of order) {
    const p = prefixOf.get(ns);
    if (p !== undefined) rootDecls.push(` xmlns:${p}="${escapeXml(ns, true)}"`);
  }

  const attrName = (key: string): string => {
    const m = ATTR_KEY.exec(key);
    if (!m) return checkName(key);
    const ns = m[1] as string;
    const local = checkName(m[2] as string);
    if (ns === '') return local;
    if (ns === NS.XML) return `xml:${local}`;
    return `${prefixOf.get(ns) as string}:${local}`;
  };

  let out = opts?.declaration === false ? '' : '<?xml version="1.0" encoding="UTF-8"?>';
  const write = (el: XmlElement, defaultNs: string, isRoot: boolean): void => {
    const local = checkName(el.name);
    let qname: string;
    let decl = isRoot ? rootDecls.join('') : '';
    let innerDefault = defaultNs;
    if (el.ns === defaultNs) {
      qname = local;
    } else if (el.ns === '') {
      // An element in no namespace below a default-namespaced ancestor must undeclare it.
      qname = local;
      decl += ' xmlns=""';
      innerDefault = '';
    } else if (el.ns === root.ns && !prefixOf.has(el.ns)) {
      // Back in the root namespace below an xmlns="" subtree.
      qname = local;
      decl += ` xmlns="${escapeXml(el.ns, true)}"`;
      innerDefault = el.ns;
    } else {
      qname = `${prefixOf.get(el.ns) as string}:${local}`;
    }
    out += `<${qname}${decl}`;
    for (const [k, v] of Object.entries(el.attrs)) out += ` ${attrName(k)}="${escapeXml(v, true)}"`;
    if (el.children.length === 0) { out += '/>'; return; }
    out += '>';
    for (const c of el.children) {
      if (typeof c === 'string') out += escapeXml(c, false);
      else write(c, innerDefault, false);
    }
    out += `</${qname}>`;
  };
  write(root, root.ns, true);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Child elements of `el`, optionally only those with the given namespace and/or local name. */
export function childElements(el: XmlElement, ns?: string, name?: string): XmlElement[] {
  const out: XmlElement[] = [];
  for (const c of el.children) {
    if (typeof c === 'string') continue;
    if (ns !== undefined && c.ns !== ns) continue;
    if (name !== undefined && c.name !== name) continue;
    out.push(c);
  }
  return out;
}

export function firstChild(el: XmlElement, ns: string, name: string): XmlElement | undefined {
  for (const c of el.children) if (typeof c !== 'string' && c.ns === ns && c.name === name) return c;
  return undefined;
}

/** Text content of the element and all its descendants, in document order, trimmed. */
export function textOf(el: XmlElement): string {
  let out = '';
  const stack: XmlNode[] = [el];
  while (stack.length > 0) {
    const n = stack.pop() as XmlNode;
    if (typeof n === 'string') { out += n; continue; }
    for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i] as XmlNode);
  }
  return out.trim();
}
