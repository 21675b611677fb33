// application/cpim-pidf+xml: PIDF as it stood in draft-ietf-impp-cpim-pidf (before RFC 3863),
// still asked for by old clients (Windows Messenger 5.x, early linphone/eXosip, resiprocate).
// It is what SER/OpenSER's presence code emits for this type (the "lpidf"/cpim-pidf writer):
// the same structure as PIDF under the namespace urn:ietf:params:xml:ns:cpim-pidf, a pres: entity,
// and only tuples (status/basic, contact with priority, notes) and top-level notes. RFC 4479
// persons and devices and every extension are left out, since these clients know none of them.

import { NS, childElements, serializeXml, type XmlElement, type XmlNode } from './xml.js';
import type { PidfDocument } from './pidf.js';

const el = (name: string, children: XmlNode[] = [], attrs: Record<string, string> = {}): XmlElement =>
  ({ ns: NS.CPIM_PIDF, name, attrs, children });

/** The draft uses pres: URIs for the entity (as SER writes it): sip:alice@x -> pres:alice@x. */
function presUri(uri: string): string {
  return /^sips?:/i.test(uri) ? `pres:${uri.slice(uri.indexOf(':') + 1)}` : uri;
}

/** A note keeps its text and xml:lang, nothing else. */
function note(n: XmlElement): XmlElement {
  const attrs: Record<string, string> = {};
  const lang = n.attrs[`{${NS.XML}}lang`];
  if (lang !== undefined) attrs[`{${NS.XML}}lang`] = lang;
  const text = n.children.filter((c): c is string => typeof c === 'string').join('').trim();
  return el('note', text === '' ? [] : [text], attrs);
}

/** dm:note children of the persons, used when the document has no top-level note. */
function personNotes(doc: PidfDocument): XmlElement[] {
  return doc.persons.flatMap((p) => childElements(p, NS.DM, 'note'));
}

export function renderCpimPidf(doc: PidfDocument): string {
  const tuples: XmlElement[] = doc.tuples.map((t) => {
    const children: XmlElement[] = [el('status', t.basic === undefined ? [] : [el('basic', [t.basic])])];
    if (t.contact !== undefined) {
      children.push(el('contact', [t.contact], t.priority === undefined ? {} : { priority: String(t.priority) }));
    }
    for (const n of childElements(t.element, NS.PIDF, 'note')) children.push(note(n));
    return el('tuple', children, { id: t.id });
  });
  if (tuples.length === 0) {
    // SER's fix for Windows Messenger 5.1 and linphone 1.2, which need at least one tuple.
    tuples.push(el('tuple', [el('status', [el('basic', ['closed'])])], { id: 'none' }));
  }
  const notes = (doc.notes.length > 0 ? doc.notes : personNotes(doc)).map(note);
  const root = el('presence', [...tuples, ...notes], { entity: presUri(doc.entity) });
  return serializeXml(root);
}
