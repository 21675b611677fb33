// A small namespace-aware XML tree for presence documents, hardened for bytes that arrive
// straight from the network (PUBLISH and NOTIFY bodies, XCAP PUTs).
//
// Read in one pass by Herald's own reader (readDocument below says why it is not a library):
//   * no DTD: any markup declaration is refused on the raw text before anything reads markup,
//     so no entity is ever declared, let alone expanded (billion laughs, XXE);
//   * entity references are decoded by our own decoder: only the five predefined entities
//     and character references (XML 1.0 §4.1, §4.6); anything else is an error;
//   * namespaces (Namespaces in XML 1.0 §5–6) are resolved as each start tag is read;
//   * size, depth and element-count limits, illegal characters and U+FFFD.
// Pure: no I/O, no clock.

import { BoundedMemo } from '../util/memo.js';

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

const PREDEFINED: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };

function isXmlChar(cp: number): boolean {
  // XML 1.0 §2.2 Char production.
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

/** Decodes the five predefined entities and character references; anything else throws.
 *  The regex is linear: each '&' starts at most one bounded match. */
export function decodeEntities(text: string): string {
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

/**
 * Checks on the raw text, before anything reads markup: size in UTF-8 bytes, characters that are
 * not XML (C0 controls, lone surrogates, U+FFFE/U+FFFF), U+FFFD as the mark of undecodable bytes,
 * and any markup declaration (`<!DOCTYPE`, `<!ENTITY`, `<!ELEMENT`...). Only comments and CDATA
 * may start with `<!`. This deliberately also refuses "<!DOCTYPE" written inside a comment or CDATA
 * section: no presence document needs that and the check stays a single linear scan.
 */
export function preflight(text: string, limits: XmlLimits): void {
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
export interface Scope { readonly bindings: ReadonlyMap<string, string>; readonly parent: Scope | undefined }

/** The scope outside the root element: no default namespace. */
export const ROOT_SCOPE: Scope = { bindings: new Map(), parent: undefined };

function lookup(scope: Scope | undefined, prefix: string): string | undefined {
  for (let s = scope; s !== undefined; s = s.parent) {
    const uri = s.bindings.get(prefix);
    if (uri !== undefined) return uri;
  }
  return undefined;
}

function resolvePrefix(scope: Scope, prefix: string): string {
  if (prefix === 'xml') return NS.XML;
  const uri = lookup(scope, prefix);
  if (uri === undefined) throw new XmlError('unbound namespace prefix');
  return uri;
}

const NCNAME = /^[\p{L}_][\p{L}\p{N}\p{M}_.\-\u00B7]*$/u;
/** XML 1.0 (fifth edition) §2.3 Name, as fast-xml-parser's validator has it (BMP only). The
 *  combining marks of NameChar first in their class, so that none reads as joined to the one before. */
const NAME_START = ':A-Za-z_\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C-\\u200D\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD';
const NAME_CHAR = `\\u0300-\\u036F${NAME_START}\\-.\\d\\u00B7\\u203F-\\u2040`;
const XML_NAME = new RegExp(`^[${NAME_START}][${NAME_CHAR}]*$`);

/** A name as written, split per Namespaces in XML §4 (QName = (Prefix ':')? LocalPart). */
interface QName { readonly prefix: string | undefined; readonly local: string }

/** A name as written, checked (XML 1.0 §2.3 and Namespaces in XML §3) and split. */
function checkQName(raw: string): QName {
  if (!XML_NAME.test(raw)) throw new XmlError('malformed XML: invalid name');
  const colon = raw.indexOf(':');
  if (colon === -1) {
    if (!NCNAME.test(raw)) throw new XmlError('malformed XML: invalid name');
    return { prefix: undefined, local: raw };
  }
  const prefix = raw.slice(0, colon);
  const local = raw.slice(colon + 1);
  if (!NCNAME.test(prefix) || !NCNAME.test(local)) throw new XmlError('malformed XML: invalid qualified name');
  return { prefix, local };
}

/** Names already checked: a presence document repeats a few names many times (a refused name
 *  throws and is not kept). */
const qnames = new BoundedMemo(checkQName);
const qnameOf = (raw: string): QName => qnames.get(raw);

/**
 * One XmlElement (without children) from a start tag's name and attributes as written (flat
 * name, value pairs, values already decoded), namespaces resolved (Namespaces in XML 1.0 §5–6).
 */
export function openElement(qname: string, attrPairs: readonly string[], parentScope: Scope): { el: XmlElement; scope: Scope } {
  let bindings: Map<string, string> | undefined;
  let plain = false;
  for (let i = 0; i < attrPairs.length; i += 2) {
    const q = qnameOf(attrPairs[i] as string);
    const value = attrPairs[i + 1] as string;
    const prefix = q.prefix === 'xmlns' ? q.local : q.prefix === undefined && q.local === 'xmlns' ? '' : undefined;
    if (prefix === undefined) {
      plain = true;
      continue;
    }
    // Namespaces in XML 1.0 §3: xml may only be bound to its own URI, xmlns never;
    // no other prefix may take either URI; a prefixed declaration cannot be empty (1.0 has no undeclaring).
    if (prefix === 'xmlns') throw new XmlError('malformed XML: the xmlns prefix cannot be declared');
    if ((prefix === 'xml') !== (value === NS.XML)) throw new XmlError('malformed XML: misuse of the xml namespace');
    if (value === NS.XMLNS) throw new XmlError('malformed XML: misuse of the xmlns namespace');
    if (prefix !== '' && value === '') throw new XmlError('malformed XML: empty namespace declaration');
    bindings ??= new Map();
    bindings.set(prefix, value);
  }
  const scope: Scope = bindings === undefined ? parentScope : { bindings, parent: parentScope };
  const q = qnameOf(qname);
  const ns = q.prefix === undefined ? (lookup(scope, '') ?? '') : resolvePrefix(scope, q.prefix);
  const attrs: Record<string, string> = {};
  if (plain) {
    for (let i = 0; i < attrPairs.length; i += 2) {
      const a = qnameOf(attrPairs[i] as string);
      if (a.prefix === 'xmlns' || (a.prefix === undefined && a.local === 'xmlns')) continue;
      // Unprefixed attributes are in no namespace (Namespaces in XML §6.2), whatever the default is.
      const key = a.prefix === undefined ? a.local : `{${resolvePrefix(scope, a.prefix)}}${a.local}`;
      if (Object.prototype.hasOwnProperty.call(attrs, key)) throw new XmlError('malformed XML: duplicate attribute');
      // An attribute called __proto__ is kept as data rather than lost to the setter.
      if (key === '__proto__') Object.defineProperty(attrs, key, { value: attrPairs[i + 1], enumerable: true, writable: true, configurable: true });
      else attrs[key] = attrPairs[i + 1] as string;
    }
  }
  return { el: { ns, name: q.local, attrs, children: [] }, scope };
}

/** XML 1.0 §2.3 S: space, tab, CR, LF. */
function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
}

export function isBlank(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (!isSpace(s.charCodeAt(i))) return false;
  return true;
}

/** Text inside an element: adjacent text (around a comment, next to a CDATA section) becomes one
 *  node, so a serialize/parse round trip is stable. Returns whether it is more than whitespace. */
export function appendText(el: XmlElement, text: string): boolean {
  if (text === '') return false;
  const kids = el.children;
  const last = kids[kids.length - 1];
  if (typeof last === 'string') kids[kids.length - 1] = last + text;
  else kids.push(text);
  return !isBlank(text);
}

/** Whitespace-only text is dropped unless its element also has real text (mixed content). */
export function finishElement(el: XmlElement, hasText: boolean): void {
  if (!hasText && el.children.length > 0) el.children = el.children.filter((c) => typeof c !== 'string');
}

interface Frame { readonly el: XmlElement; readonly scope: Scope; readonly qname: string; hasText: boolean }

const GT = 0x3e;
const SLASH = 0x2f;
const BANG = 0x21;
const QUESTION = 0x3f;
const EQUALS = 0x3d;
const QUOTE = 0x22;
const APOS = 0x27;
const NO_ATTRIBUTES: string[] = [];
/** §2.8 XMLDecl: '<?xml' VersionInfo EncodingDecl? SDDecl? S? '?>' */
const XML_DECL = /^<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(["'])1\.[0-9]+\1([ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(["'])[A-Za-z][A-Za-z0-9._-]*\3)?([ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(["'])(yes|no)\5)?[ \t\r\n]*\?>$/;

/** End of a name in markup: whitespace, '/', '>', '=', '?' or the end of the text. */
function nameEnd(text: string, from: number): number {
  let j = from;
  for (; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (isSpace(c) || c === SLASH || c === GT || c === EQUALS || c === QUESTION) break;
  }
  return j;
}

function skipSpace(text: string, from: number): number {
  let j = from;
  while (j < text.length && isSpace(text.charCodeAt(j))) j++;
  return j;
}

/**
 * Why Herald reads XML itself (the brief prefers a library, and fast-xml-parser was the one): the
 * library needs two passes (its validator for well-formedness, then its parser) plus a third over
 * its output to resolve namespaces; together that was the largest single cost of a PUBLISH
 * (~20% of its CPU, ~35% of the bytes it allocates). This reader does all three in one pass
 * over the text, producing the same tree:
 *   * no DTD at all: preflight() has refused every `<!` that is not a comment or CDATA, and the
 *     only entities are XML's five and character references (decodeEntities), so nothing expands;
 *   * bounded: size by preflight, depth and element count checked as each start tag is read, an
 *     explicit stack (no recursion), one linear scan (every search moves forward);
 *   * well-formed per XML 1.0: names (§2.3), attributes quoted, no '<' in a value, no duplicates
 *     (§3.1), tags nested and matched, one root, no text outside it, comments, CDATA, PIs closed,
 *     the XML declaration only at the very start;
 *   * namespaces resolved as PIDF and the other presence formats need them (openElement).
 * test/unit/xml-reader.test.ts holds it to the library path (test/support/xml-library.ts) on the
 * test corpus and on random and mutated documents: same tree, and it refuses whatever the library
 * path refused.
 */
function readDocument(text: string, lim: XmlLimits): XmlElement {
  const n = text.length;
  const stack: Frame[] = [];
  let root: XmlElement | undefined;
  let elements = 0;
  let i = 0;
  while (i < n) {
    const lt = text.indexOf('<', i);
    const end = lt === -1 ? n : lt;
    if (end > i) {
      const raw = text.slice(i, end);
      const top = stack[stack.length - 1];
      if (top === undefined) {
        if (!isBlank(raw)) throw new XmlError('malformed XML: text outside the root element');
      } else if (appendText(top.el, decodeEntities(raw))) top.hasText = true;
    }
    if (lt === -1) break;
    const c = text.charCodeAt(lt + 1);
    if (c === SLASH) {
      // End tag (§3.1): '</' Name S? '>'
      const ne = nameEnd(text, lt + 2);
      const name = text.slice(lt + 2, ne);
      const close = skipSpace(text, ne);
      if (name === '') throw new XmlError('malformed XML: invalid tag');
      if (text.charCodeAt(close) !== GT) throw new XmlError('malformed XML: end tag not closed after its name');
      const frame = stack.pop();
      if (frame === undefined) throw new XmlError('malformed XML: closing tag without opening tag');
      if (frame.qname !== name) throw new XmlError('malformed XML: mismatched closing tag');
      finishElement(frame.el, frame.hasText);
      i = close + 1;
    } else if (c === BANG) {
      if (text.startsWith('<!--', lt)) {
        const e = text.indexOf('-->', lt + 4);
        if (e === -1) throw new XmlError('malformed XML: unclosed comment');
        i = e + 3;
      } else if (text.startsWith('<![CDATA[', lt)) {
        const e = text.indexOf(']]>', lt + 9);
        if (e === -1) throw new XmlError('malformed XML: unclosed CDATA section');
        const top = stack[stack.length - 1];
        if (top === undefined) throw new XmlError('malformed XML: text outside the root element');
        if (appendText(top.el, text.slice(lt + 9, e))) top.hasText = true;
        i = e + 3;
      } else {
        throw new XmlError('malformed XML: markup declarations are not allowed');
      }
    } else if (c === QUESTION) {
      // Processing instruction (§2.6), not kept; the XML declaration (§2.8) only at the very start.
      const e = text.indexOf('?>', lt + 2);
      if (e === -1) throw new XmlError('malformed XML: invalid processing instruction (unclosed)');
      const te = Math.min(nameEnd(text, lt + 2), e);
      const target = text.slice(lt + 2, te);
      // PI ::= '<?' PITarget (S Char*)? '?>'
      if (!XML_NAME.test(target) || (te < e && !isSpace(text.charCodeAt(te)))) throw new XmlError('malformed XML: invalid processing instruction');
      const lower = target.toLowerCase();
      if (lower === 'xml') {
        if (lt !== 0) throw new XmlError('malformed XML: XML declaration not at the start');
        if (!XML_DECL.test(text.slice(0, e + 2))) throw new XmlError('malformed XML: bad XML declaration');
      } else if (lower.startsWith('xml')) {
        // §2.3/§2.6: targets beginning with "xml" are reserved. Well-formed, but no presence format
        // uses one, and refusing them keeps this reader no more lenient than the library reference.
        throw new XmlError('malformed XML: invalid processing instruction (reserved target)');
      }
      i = e + 2;
    } else {
      // Start tag (§3.1): '<' Name (S Attribute)* S? '/'? '>'
      const parent = stack[stack.length - 1];
      if (parent === undefined && root !== undefined) throw new XmlError('malformed XML: more than one root element');
      if (root !== undefined && ++elements > lim.maxElements) throw new XmlError(`too many XML elements (limit ${lim.maxElements})`);
      if (stack.length + 1 > lim.maxDepth) throw new XmlError(`XML nested too deeply (limit ${lim.maxDepth})`);
      const ne = nameEnd(text, lt + 1);
      const qname = text.slice(lt + 1, ne);
      let pairs: string[] = NO_ATTRIBUTES;
      let selfClosing = false;
      let j = ne;
      for (;;) {
        const k = skipSpace(text, j);
        const spaced = k > j;
        j = k;
        const d = text.charCodeAt(j);
        if (d === GT) { j++; break; }
        if (d === SLASH) {
          if (text.charCodeAt(j + 1) !== GT) throw new XmlError('malformed XML: invalid attribute');
          j += 2;
          selfClosing = true;
          break;
        }
        if (j >= n) throw new XmlError('malformed XML: unclosed tag');
        if (!spaced) throw new XmlError('malformed XML: attributes not separated by whitespace');
        const ae = nameEnd(text, j);
        const aname = text.slice(j, ae);
        let p = skipSpace(text, ae);
        // No attribute without a value (§3.1), whatever HTML allows.
        if (aname === '') throw new XmlError('malformed XML: attribute without a name');
        if (text.charCodeAt(p) !== EQUALS) throw new XmlError('malformed XML: attribute without a value');
        p = skipSpace(text, p + 1);
        const quote = text.charCodeAt(p);
        if (quote !== QUOTE && quote !== APOS) throw new XmlError('malformed XML: attribute value not quoted');
        const close = text.indexOf(quote === QUOTE ? '"' : "'", p + 1);
        if (close === -1) throw new XmlError('malformed XML: unclosed tag');
        const raw = text.slice(p + 1, close);
        if (raw.includes('<')) throw new XmlError('malformed XML: < in an attribute value');
        if (pairs === NO_ATTRIBUTES) pairs = [];
        for (let a = 0; a < pairs.length; a += 2) if (pairs[a] === aname) throw new XmlError('malformed XML: duplicate attribute');
        pairs.push(aname, decodeEntities(raw));
        j = close + 1;
      }
      const { el, scope } = openElement(qname, pairs, parent === undefined ? ROOT_SCOPE : parent.scope);
      if (parent === undefined) {
        root = el;
        elements = 1;
      } else {
        parent.el.children.push(el);
      }
      if (!selfClosing) stack.push({ el, scope, qname, hasText: false });
      i = j;
    }
  }
  if (stack.length > 0) throw new XmlError('malformed XML: unclosed tag');
  if (root === undefined) throw new XmlError('malformed XML: no root element');
  return root;
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
  return readDocument(text, lim);
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
