// Composition: several publications (one per device / EPA, each with its own ETag, RFC 3903 §4)
// of one presentity become the single document watchers see.
//
// RFC 3863 and RFC 4479 §3 describe what a presence document means (services as tuples,
// one person, devices) but leave how a presence agent merges sources to local policy
// (RFC 4479 §3.4 "composition"); this is Herald's choice:
//   * tuples: the union over publications, keyed by tuple id; when two publications carry the
//     same id the newest publication wins. Output order: the newest publication's tuples first,
//     then the new ids of the next newest, and so on.
//   * devices (dm:device): likewise, keyed by device id.
//   * person (dm:person): exactly one in the output, built child by child. For each kind of
//     child element (namespace + local name: rpid:activities, rpid:mood, dm:note, c:card...)
//     the elements of that kind come from the newest publication whose person has that kind.
//     So the newest person data wins, but a device publishing only activities does not erase
//     the mood another device published. The person id (and other attributes) are those of
//     the newest publication that has a person.
//     Children are ordered as RFC 4479's schema wants: other namespaces, then dm:note, then
//     dm:timestamp, then anything else in the data-model namespace.
//   * top-level notes: those of the newest publication that has any.
//   * extensions: the union, newest publication first, exact duplicates dropped.
//   * entity: the one given (the presentity's AOR), whatever the publications said.
// "Newest" is the higher publishedAt; equal times are ordered by ETag so the result does not
// depend on the order of the input. Pure and deterministic: no clock, inputs never modified;
// the result shares (immutable) subtrees with the inputs.

import { NS, type XmlElement, type XmlNode } from '../formats/xml.js';
import type { PidfDocument, PidfTuple } from '../formats/pidf.js';

export interface PublishedDocument { etag: string; publishedAt: number; doc: PidfDocument }

function newestFirst(a: PublishedDocument, b: PublishedDocument): number {
  if (a.publishedAt !== b.publishedAt) return b.publishedAt - a.publishedAt;
  return a.etag < b.etag ? 1 : a.etag > b.etag ? -1 : 0;
}

/** A canonical string for structural equality: attribute order does not matter. */
function canonical(node: XmlNode): string {
  if (typeof node === 'string') return JSON.stringify(node);
  const attrs = Object.keys(node.attrs).sort().map((k) => [k, node.attrs[k]]);
  return `[${JSON.stringify([node.ns, node.name, attrs])},${node.children.map(canonical).join(',')}]`;
}

function kindOf(el: XmlElement): string {
  return `{${el.ns}}${el.name}`;
}

/** Rank of a person child kind in RFC 4479's personType sequence. */
function personRank(el: XmlElement): number {
  if (el.ns !== NS.DM) return 0;
  if (el.name === 'note') return 1;
  if (el.name === 'timestamp') return 2;
  return 3;
}

function composePerson(ordered: readonly PublishedDocument[]): XmlElement[] {
  let attrs: Record<string, string> | undefined;
  const claimed = new Map<string, XmlElement[]>();
  for (const pub of ordered) {
    if (pub.doc.persons.length === 0) continue;
    attrs ??= { ...(pub.doc.persons[0] as XmlElement).attrs };
    // Gather this publication's kinds first, so several elements of one kind (dm:note in two
    // languages, rpid:activities with different validity) all come from the same publication.
    const local = new Map<string, XmlElement[]>();
    for (const person of pub.doc.persons) {
      for (const c of person.children) {
        if (typeof c === 'string') continue;
        const k = kindOf(c);
        const list = local.get(k);
        if (list) list.push(c);
        else local.set(k, [c]);
      }
    }
    for (const [k, list] of local) if (!claimed.has(k)) claimed.set(k, list);
  }
  if (attrs === undefined) return [];
  const children = [...claimed.values()].flat();
  // Array.prototype.sort is stable, so claim order is kept within a rank.
  children.sort((a, b) => personRank(a) - personRank(b));
  return [{ ns: NS.DM, name: 'person', attrs, children }];
}

export function composePresence(entity: string, pubs: readonly PublishedDocument[]): PidfDocument | undefined {
  if (pubs.length === 0) return undefined;
  const ordered = [...pubs].sort(newestFirst);

  const tuples: PidfTuple[] = [];
  const tupleIds = new Set<string>();
  const devices: XmlElement[] = [];
  const deviceIds = new Set<string>();
  const extensions: XmlElement[] = [];
  const extensionKeys = new Set<string>();
  let notes: XmlElement[] | undefined;

  for (const { doc } of ordered) {
    for (const t of doc.tuples) {
      if (tupleIds.has(t.id)) continue;
      tupleIds.add(t.id);
      tuples.push(t);
    }
    for (const d of doc.devices) {
      const id = d.attrs['id'];
      if (id !== undefined) {
        if (deviceIds.has(id)) continue;
        deviceIds.add(id);
      }
      devices.push(d);
    }
    if (notes === undefined && doc.notes.length > 0) notes = [...doc.notes];
    for (const x of doc.extensions) {
      const key = canonical(x);
      if (extensionKeys.has(key)) continue;
      extensionKeys.add(key);
      extensions.push(x);
    }
  }

  return {
    entity,
    tuples,
    persons: composePerson(ordered),
    devices,
    notes: notes ?? [],
    extensions,
  };
}
