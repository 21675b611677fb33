// PIDF (RFC 3863) with the RFC 4479 data model (dm:person, dm:device).
//
// A document is kept as structured lists of the original elements, so that everything a client
// sent (RPID, CIPID, caps, vendor namespaces) survives a parse/serialize round trip untouched;
// the few facts Herald itself needs (basic status, contact, priority, timestamp) are extracted
// for convenience. Pure: no I/O, no clock.

import {
  NS, XmlError, childElements, firstChild, parseXml, serializeXml, textOf, toReasonPhrase,
  type XmlElement, type XmlLimits,
} from './xml.js';

export interface PidfTuple {
  id: string;
  basic: 'open' | 'closed' | undefined;
  contact: string | undefined;
  priority: number | undefined;
  timestamp: string | undefined;
  /** The whole tuple element; authoritative when serializing (build new tuples with buildTuple). */
  element: XmlElement;
}

export interface PidfDocument {
  entity: string;
  tuples: PidfTuple[];
  persons: XmlElement[];
  devices: XmlElement[];
  notes: XmlElement[];
  extensions: XmlElement[];
}

/** Message like "Bad PIDF: missing entity attribute"; safe as a SIP reason phrase. */
export class PidfError extends Error {
  constructor(message: string) {
    super(toReasonPhrase(message));
    this.name = 'PidfError';
  }
}

const bad = (what: string): PidfError => new PidfError(`Bad PIDF: ${what}`);

// RFC 3863 §4.1.5 / XML Schema qvalue: 0 to 1 with at most three decimals.
const QVALUE = /^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$/;

function parseTuple(el: XmlElement): PidfTuple {
  const id = el.attrs['id'];
  if (id === undefined || id.trim() === '') throw bad('tuple without id');
  // RFC 3863 §4.1.2: <status> is mandatory; <basic> inside it is optional.
  const status = firstChild(el, NS.PIDF, 'status');
  if (status === undefined) throw bad('tuple without status');
  let basic: PidfTuple['basic'];
  const basicEl = firstChild(status, NS.PIDF, 'basic');
  if (basicEl !== undefined) {
    const v = textOf(basicEl);
    if (v !== 'open' && v !== 'closed') throw bad('basic must be open or closed');
    basic = v;
  }
  let contact: string | undefined;
  let priority: number | undefined;
  const contactEl = firstChild(el, NS.PIDF, 'contact');
  if (contactEl !== undefined) {
    const c = textOf(contactEl);
    contact = c === '' ? undefined : c;
    const p = contactEl.attrs['priority'];
    if (p !== undefined) {
      if (!QVALUE.test(p.trim())) throw bad('contact priority must be a number from 0 to 1');
      priority = Number(p.trim());
    }
  }
  const tsEl = firstChild(el, NS.PIDF, 'timestamp');
  const ts = tsEl === undefined ? undefined : textOf(tsEl);
  return { id, basic, contact, priority, timestamp: ts === '' ? undefined : ts, element: el };
}

/**
 * Parses and checks a PIDF document: root {PIDF}presence with an entity, each tuple with an id
 * (unique) and a status whose basic, if present, is open or closed. dm:person and dm:device need
 * an id unique among their kind (RFC 4479 §4: ids are xs:ID). Any other top-level element is kept
 * verbatim as an extension, in document order.
 */
export function parsePidf(text: string, limits?: Partial<XmlLimits>): PidfDocument {
  const root = parseXmlOr(text, limits, bad);
  if (root.ns !== NS.PIDF || root.name !== 'presence') throw bad('root element is not a PIDF presence');
  return pidfFromElement(root);
}

/** parseXml, its errors turned into the caller's (a PidfError with the format's own prefix). */
export function parseXmlOr(text: string, limits: Partial<XmlLimits> | undefined, wrap: (message: string) => Error): XmlElement {
  try {
    return parseXml(text, limits);
  } catch (e) {
    if (e instanceof XmlError) throw wrap(e.message);
    throw e;
  }
}

/** The checks of parsePidf on an element already parsed (RFC 5262 pidf-full, a patched tree). */
export function pidfFromElement(root: XmlElement): PidfDocument {
  const entity = root.attrs['entity'];
  if (entity === undefined || entity.trim() === '') throw bad('missing entity attribute');

  const doc: PidfDocument = { entity: entity.trim(), tuples: [], persons: [], devices: [], notes: [], extensions: [] };
  const tupleIds = new Set<string>();
  const personIds = new Set<string>();
  const deviceIds = new Set<string>();
  for (const el of childElements(root)) {
    if (el.ns === NS.PIDF && el.name === 'tuple') {
      const t = parseTuple(el);
      if (tupleIds.has(t.id)) throw bad('duplicate tuple id');
      tupleIds.add(t.id);
      doc.tuples.push(t);
    } else if (el.ns === NS.PIDF && el.name === 'note') {
      doc.notes.push(el);
    } else if (el.ns === NS.DM && (el.name === 'person' || el.name === 'device')) {
      const id = el.attrs['id'];
      if (id === undefined || id.trim() === '') throw bad(`${el.name} without id`);
      const ids = el.name === 'person' ? personIds : deviceIds;
      if (ids.has(id)) throw bad(`duplicate ${el.name} id`);
      ids.add(id);
      (el.name === 'person' ? doc.persons : doc.devices).push(el);
    } else {
      // RFC 3863 §4.1 allows only other namespaces here; an unknown PIDF-namespace element is
      // kept rather than refused, since refusing a whole PUBLISH for it helps nobody.
      doc.extensions.push(el);
    }
  }
  return doc;
}

/**
 * Serializes in the order RFC 3863's schema wants (tuples, then notes, then other namespaces):
 * tuples, notes, persons, devices, extensions.
 */
export function serializePidf(doc: PidfDocument): string {
  return serializeXml(pidfElement(doc));
}

/** The document as one {PIDF}presence element, children in schema order. */
export function pidfElement(doc: PidfDocument): XmlElement {
  return {
    ns: NS.PIDF,
    name: 'presence',
    attrs: { entity: doc.entity },
    children: [
      ...doc.tuples.map((t) => t.element),
      ...doc.notes,
      ...doc.persons,
      ...doc.devices,
      ...doc.extensions,
    ],
  };
}

function pidfEl(name: string, children: XmlElement['children'] = [], attrs: Record<string, string> = {}): XmlElement {
  return { ns: NS.PIDF, name, attrs, children };
}

/**
 * Builds a tuple from facts (for gateways and synthesized documents), with element and facts
 * consistent. Element order follows RFC 3863 §4.1.2: status, contact, note*, timestamp.
 */
export function buildTuple(fields: {
  id: string;
  basic: 'open' | 'closed' | undefined;
  contact?: string | undefined;
  priority?: number | undefined;
  timestamp?: string | undefined;
  notes?: readonly string[];
}): PidfTuple {
  const children: XmlElement[] = [pidfEl('status', fields.basic === undefined ? [] : [pidfEl('basic', [fields.basic])])];
  let priority = fields.priority;
  if (fields.contact !== undefined) {
    const attrs: Record<string, string> = {};
    if (priority !== undefined) {
      // Keep the fact equal to what a parser would read back from the attribute.
      const p = Math.min(1, Math.max(0, priority));
      attrs['priority'] = String(Math.round(p * 1000) / 1000);
      priority = Number(attrs['priority']);
    }
    children.push(pidfEl('contact', [fields.contact], attrs));
  } else {
    priority = undefined;
  }
  for (const n of fields.notes ?? []) children.push(pidfEl('note', [n]));
  if (fields.timestamp !== undefined) children.push(pidfEl('timestamp', [fields.timestamp]));
  return {
    id: fields.id,
    basic: fields.basic,
    contact: fields.contact,
    priority,
    timestamp: fields.timestamp,
    element: pidfEl('tuple', children, { id: fields.id }),
  };
}

/** The document a watcher of a presentity with no publication sees: one tuple, basic closed. */
export function closedDocument(entity: string): PidfDocument {
  return {
    entity,
    tuples: [buildTuple({ id: 'closed', basic: 'closed' })],
    persons: [],
    devices: [],
    notes: [],
    extensions: [],
  };
}

/** The same document under another entity (e.g. the AOR the watcher subscribed to). */
export function withEntity(doc: PidfDocument, entity: string): PidfDocument {
  return { ...doc, entity };
}
