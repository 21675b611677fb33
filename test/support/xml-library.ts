// The XML path Herald had before its own reader (src/formats/xml.ts readDocument): fast-xml-parser's
// validator for well-formedness, then its XMLParser (preserveOrder), then a walk over the library's
// output that resolves namespaces. Kept only as the reference the reader is held to
// (test/unit/xml-reader.test.ts); the checks both share (preflight, entities, namespaces, text
// rules) are xml.ts's own functions, so the comparison is of the tokenizing alone.
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import {
  DEFAULT_XML_LIMITS, ROOT_SCOPE, XmlError, appendText, decodeEntities, finishElement, isBlank, openElement, preflight,
  type Scope, type XmlElement, type XmlLimits,
} from '../../src/formats/xml.js';

/** Tag names are marked so that no XML name collides with the library's own keys ('#text', ':@'). */
const TAG_MARK = '~';
const ATTR_PREFIX = '@_';
const TEXT_KEY = '#text';
const ATTRS_KEY = ':@';

const entityDecoder = {
  setExternalEntities: (): void => { /* never any */ },
  addInputEntities: (): void => { throw new XmlError('DOCTYPE and ENTITY declarations are not allowed'); },
  reset: (): void => { /* stateless */ },
  decode: decodeEntities,
  setXmlVersion: (): void => { /* XML 1.0 rules regardless */ },
};

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
    maxNestedTags: maxDepth,
    onDangerousProperty: (name: string) => name,
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function asArray(v: unknown): readonly unknown[] {
  if (!Array.isArray(v)) throw new XmlError('malformed XML');
  return v;
}

function tagKeyOf(node: Record<string, unknown>): string | undefined {
  for (const key of Object.keys(node)) if (key.startsWith(TAG_MARK)) return key;
  return undefined;
}

function open(tagKey: string, node: Record<string, unknown>, parent: Scope): { el: XmlElement; scope: Scope } {
  // Every mark stripped: the library applies transformTagName twice to self-closing tags.
  let start = 0;
  while (tagKey.startsWith(TAG_MARK, start)) start += TAG_MARK.length;
  const pairs: string[] = [];
  const raw = node[ATTRS_KEY];
  if (isRecord(raw)) {
    for (const key of Object.keys(raw)) {
      const value = raw[key];
      if (typeof value !== 'string' || !key.startsWith(ATTR_PREFIX)) throw new XmlError('malformed XML: bad attribute');
      pairs.push(key.slice(ATTR_PREFIX.length), value);
    }
  }
  return openElement(tagKey.slice(start), pairs, parent);
}

interface Frame { src: readonly unknown[]; index: number; el: XmlElement; scope: Scope; depth: number; hasText: boolean }

function convert(top: readonly unknown[], limits: XmlLimits): XmlElement {
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
  const first = open(rootKey, rootNode, ROOT_SCOPE);
  let elements = 1;
  if (limits.maxDepth < 1) throw new XmlError(`XML nested too deeply (limit ${limits.maxDepth})`);
  const stack: Frame[] = [{ src: asArray(rootNode[rootKey]), index: 0, el: first.el, scope: first.scope, depth: 1, hasText: false }];
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
      if (appendText(frame.el, text)) frame.hasText = true;
      continue;
    }
    const key = tagKeyOf(node);
    if (key === undefined) continue; // comments and PIs are not kept
    if (++elements > limits.maxElements) throw new XmlError(`too many XML elements (limit ${limits.maxElements})`);
    if (frame.depth + 1 > limits.maxDepth) throw new XmlError(`XML nested too deeply (limit ${limits.maxDepth})`);
    const child = open(key, node, frame.scope);
    frame.el.children.push(child.el);
    stack.push({ src: asArray(node[key]), index: 0, el: child.el, scope: child.scope, depth: frame.depth + 1, hasText: false });
  }
  return first.el;
}

/** parseXml as it was with the library. */
export function parseXmlWithLibrary(text: string, limits?: Partial<XmlLimits>): XmlElement {
  const lim: XmlLimits = { ...DEFAULT_XML_LIMITS, ...limits };
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  preflight(text, lim);
  const valid = XMLValidator.validate(text, { allowBooleanAttributes: false });
  if (valid !== true) throw new XmlError(`malformed XML: ${valid.err.code}`);
  if (!isBlank(text.slice(text.lastIndexOf('>') + 1))) throw new XmlError('malformed XML: text after the root element');
  let out: unknown;
  try {
    out = makeParser(lim.maxDepth).parse(text);
  } catch (e) {
    if (e instanceof XmlError) throw e;
    throw new XmlError('malformed XML');
  }
  return convert(asArray(out), lim);
}
