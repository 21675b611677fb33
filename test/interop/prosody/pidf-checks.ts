// What a SIP watcher reads in a PIDF document the XMPP gateway built (RFC 8048 §5.3): basic status,
// the embedded jabber:client show, the RPID activity and the note.
import type { PidfDocument } from '../../../src/formats/pidf.js';
import { NS, firstChild, textOf } from '../../../src/formats/xml.js';

/** "open" if any tuple is open, else the first tuple's basic. */
export const basicOf = (d: PidfDocument | undefined): string | undefined => d?.tuples.find((t) => t.basic === 'open')?.basic ?? d?.tuples[0]?.basic;

/** The `<show xmlns="jabber:client">` embedded in a tuple's status. */
export function showOf(d: PidfDocument | undefined): string | undefined {
  for (const t of d?.tuples ?? []) {
    const st = firstChild(t.element, NS.PIDF, 'status');
    const sh = st && firstChild(st, 'jabber:client', 'show');
    if (sh) return textOf(sh);
  }
  return undefined;
}

/** The first RPID activity of the first person, by element name. */
export const activityOf = (d: PidfDocument | undefined): string | undefined => {
  const acts = d?.persons[0] && firstChild(d.persons[0], NS.RPID, 'activities');
  const a = acts?.children.find((c) => typeof c !== 'string');
  return typeof a === 'object' ? a.name : undefined;
};

/** The first tuple note. */
export const noteOf = (d: PidfDocument | undefined): string | undefined => {
  for (const t of d?.tuples ?? []) {
    const n = firstChild(t.element, NS.PIDF, 'note');
    if (n) return textOf(n);
  }
  return undefined;
};
