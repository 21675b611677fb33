// Presence notification mapping, RFC 8048 §6, both ways, plus the RPID bridge that RFC 8048 leaves to
// implementations (its §6.2 note on <show/>; SylkServer and OpenSIPS fill the gap similarly).
// Pure: no I/O, no clock (timestamps are passed in).
import { buildTuple, type PidfDocument, type PidfTuple } from '../../src/formats/pidf.js';
import { NS, childElements, firstChild, textOf, type XmlElement } from '../../src/formats/xml.js';

export const NS_JABBER_CLIENT = 'jabber:client';

export type Show = 'away' | 'chat' | 'dnd' | 'xa';
export const SHOWS: readonly Show[] = ['away', 'chat', 'dnd', 'xa'];

/** One XMPP resource's last presence (RFC 6121 §4.7), as the gateway keeps it. */
export interface XmppPresence {
  available: boolean;
  show?: Show;
  status?: string;
  /** −128..127 (RFC 6121 §4.7.2.3); absent means 0. */
  priority?: number;
  lang?: string;
}

/** What a presence stanza to send carries (SIP → XMPP). */
export interface OutgoingPresence {
  type?: 'unavailable';
  show?: Show;
  status?: string;
  priority?: number;
  lang?: string;
}

// ---------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------

/**
 * XMPP <show/> → RPID activity (RFC 4480 §3.2), so SIP phones that read only RPID show it right.
 * chat and no show are plain availability: no activity. xa has no RPID peer; "away" is the nearest
 * (SylkServer does the same).
 */
export const SHOW_TO_ACTIVITY: Readonly<Record<Show, string | undefined>> = {
  chat: undefined,
  away: 'away',
  xa: 'away',
  dnd: 'busy',
};

/** RPID activity (RFC 4480 §3.2) → XMPP <show/>; activities not listed carry no show. */
export const ACTIVITY_TO_SHOW: Readonly<Record<string, Show>> = {
  away: 'away',
  appointment: 'away',
  breakfast: 'away',
  dinner: 'away',
  lunch: 'away',
  meal: 'away',
  shopping: 'away',
  'in-transit': 'away',
  busy: 'dnd',
  'on-the-phone': 'dnd',
  meeting: 'dnd',
  performance: 'dnd',
  presentation: 'dnd',
  steering: 'dnd',
  worship: 'dnd',
  vacation: 'xa',
  holiday: 'xa',
  travel: 'xa',
  sleeping: 'xa',
  'permanent-absence': 'xa',
};

/** "Most available" order among open resources (RFC 8048 §6: receivers show the most available). */
const SHOW_RANK: Readonly<Record<string, number>> = { chat: 5, none: 4, away: 3, xa: 2, dnd: 1 };

/** RFC 8048 §6.2: priority −128..127 → contact priority 0..1; negatives MUST NOT be mapped. */
export function priorityToQ(p: number | undefined): number | undefined {
  if (p === undefined) return 0;
  if (!Number.isFinite(p) || p < 0) return undefined;
  return Math.round((Math.min(127, p) / 127) * 1000) / 1000;
}

/** The reverse: contact priority 0..1 → 0..127. */
export function qToPriority(q: number | undefined): number | undefined {
  if (q === undefined || !Number.isFinite(q)) return undefined;
  return Math.round(Math.min(1, Math.max(0, q)) * 127);
}

/** A tuple id from a resourcepart: `ID-` + the resource in xs:ID-safe characters (RFC 8048 §6.2). */
export function tupleIdOf(resource: string): string {
  let out = 'ID-';
  for (const ch of resource) out += /^[A-Za-z0-9._-]$/.test(ch) ? ch : `_${(ch.codePointAt(0) ?? 0).toString(16)}_`;
  return out;
}

// ---------------------------------------------------------------------------------------------
// XMPP → SIP (RFC 8048 §6.2)
// ---------------------------------------------------------------------------------------------

const attrLang = `{${NS.XML}}lang`;

/** The resource whose state stands for the person: highest priority, then most available. */
function leading(resources: ReadonlyMap<string, XmppPresence>): XmppPresence | undefined {
  let best: XmppPresence | undefined;
  for (const p of resources.values()) {
    if (!p.available) continue;
    if (
      best === undefined ||
      (p.priority ?? 0) > (best.priority ?? 0) ||
      ((p.priority ?? 0) === (best.priority ?? 0) && (SHOW_RANK[p.show ?? 'none'] ?? 0) > (SHOW_RANK[best.show ?? 'none'] ?? 0))
    ) {
      best = p;
    }
  }
  return best;
}

/**
 * The PIDF document of a Jabber user from the last presence of each of its resources: one tuple per
 * resource (`ID-` prefixed id), basic open/closed, <status/> → <note/>, priority → contact priority,
 * <show/> embedded verbatim in the tuple's status as {jabber:client}show (RFC 8048 §6.2), and one
 * dm:person (RFC 4479) carrying the leading resource's show as an RPID activity. `contactOf` gives
 * each resource's contact URI (e.g. the mapped address with `gr`, RFC 7247 §6.3).
 */
export function xmppToPidf(
  entity: string,
  resources: ReadonlyMap<string, XmppPresence>,
  contactOf: (resource: string) => string | undefined,
  personId = 'PID-xmpp',
): PidfDocument {
  const tuples: PidfTuple[] = [];
  for (const [resource, p] of resources) {
    const t = buildTuple({
      id: tupleIdOf(resource),
      basic: p.available ? 'open' : 'closed',
      contact: contactOf(resource),
      priority: p.available ? priorityToQ(p.priority) : undefined,
      notes: p.status !== undefined && p.status !== '' ? [p.status] : [],
    });
    if (p.lang !== undefined) {
      for (const c of t.element.children) if (typeof c !== 'string' && c.name === 'note') c.attrs[attrLang] = p.lang;
    }
    if (p.available && p.show !== undefined) {
      const status = firstChild(t.element, NS.PIDF, 'status');
      status?.children.push({ ns: NS_JABBER_CLIENT, name: 'show', attrs: {}, children: [p.show] });
    }
    tuples.push(t);
  }
  if (tuples.length === 0) tuples.push(buildTuple({ id: 'ID-unavailable', basic: 'closed' }));
  const persons: XmlElement[] = [];
  const lead = leading(resources);
  const activity = lead?.show !== undefined ? SHOW_TO_ACTIVITY[lead.show] : undefined;
  if (activity !== undefined) {
    persons.push({
      ns: NS.DM,
      name: 'person',
      attrs: { id: personId },
      children: [{ ns: NS.RPID, name: 'activities', attrs: {}, children: [{ ns: NS.RPID, name: activity, attrs: {}, children: [] }] }],
    });
  }
  return { entity, tuples, persons, devices: [], notes: [], extensions: [] };
}

/** Reads a presence stanza's payload (RFC 6121 §4.7); `type` is the stanza's type attribute. */
export function readPresence(type: string | undefined, show: string | undefined, status: string | undefined, priority: string | undefined, lang: string | undefined): XmppPresence {
  const p: XmppPresence = { available: type !== 'unavailable' };
  const s = show?.trim();
  if (s !== undefined && (SHOWS as readonly string[]).includes(s)) p.show = s as Show;
  if (status !== undefined && status !== '') p.status = status;
  if (priority !== undefined && /^-?\d{1,3}$/.test(priority.trim())) {
    const n = Number(priority.trim());
    if (n >= -128 && n <= 127) p.priority = n;
  }
  if (lang !== undefined && lang !== '') p.lang = lang;
  return p;
}

// ---------------------------------------------------------------------------------------------
// SIP → XMPP (RFC 8048 §6.3)
// ---------------------------------------------------------------------------------------------

function embeddedShow(t: PidfTuple): Show | undefined {
  const status = firstChild(t.element, NS.PIDF, 'status');
  const el = (status && firstChild(status, NS_JABBER_CLIENT, 'show')) ?? firstChild(t.element, NS_JABBER_CLIENT, 'show');
  const v = el === undefined ? undefined : textOf(el);
  return v !== undefined && (SHOWS as readonly string[]).includes(v) ? (v as Show) : undefined;
}

/** The first person's RPID activities, mapped to a show (the first that maps wins). */
function activityShow(doc: PidfDocument): Show | undefined {
  for (const person of doc.persons) {
    const acts = firstChild(person, NS.RPID, 'activities');
    for (const a of acts ? childElements(acts) : []) {
      const s = a.ns === NS.RPID ? ACTIVITY_TO_SHOW[a.name] : undefined;
      if (s !== undefined) return s;
    }
    // RFC 4480 §3.11: an idle user is away from the device.
    const ui = firstChild(person, NS.RPID, 'user-input');
    if (ui !== undefined && textOf(ui) === 'idle') return 'away';
  }
  return undefined;
}

function noteOf(els: readonly XmlElement[]): { text: string; lang?: string } | undefined {
  for (const n of els) {
    const text = textOf(n);
    if (text === '') continue;
    const lang = n.attrs[attrLang];
    return lang === undefined ? { text } : { text, lang };
  }
  return undefined;
}

/**
 * The presence stanza for a PIDF document (RFC 8048 §6.3): open → no type, closed (or no open tuple)
 * → unavailable; the leading open tuple's (highest contact priority) embedded <show/> or else the
 * person's RPID activity → <show/>; its note, else the document's, else the person's → <status/>
 * with its xml:lang; its contact priority → <priority/>.
 */
export function pidfToXmpp(doc: PidfDocument | undefined): OutgoingPresence {
  if (doc === undefined) return { type: 'unavailable' };
  const open = doc.tuples.filter((t) => t.basic === 'open');
  open.sort((a, b) => (b.priority ?? 0) - (a.priority ?? 0));
  const lead = open[0];
  const personNotes = doc.persons.flatMap((p) => childElements(p, NS.DM, 'note'));
  const tupleNotes = lead ? childElements(lead.element, NS.PIDF, 'note') : doc.tuples.flatMap((t) => childElements(t.element, NS.PIDF, 'note'));
  const note = noteOf(tupleNotes) ?? noteOf(doc.notes) ?? noteOf(personNotes);
  const out: OutgoingPresence = {};
  if (!lead) out.type = 'unavailable';
  else {
    const show = embeddedShow(lead) ?? activityShow(doc);
    if (show !== undefined) out.show = show;
    const prio = lead.priority === undefined ? undefined : qToPriority(lead.priority);
    if (prio !== undefined && prio !== 0) out.priority = prio;
  }
  if (note !== undefined) {
    out.status = note.text;
    if (note.lang !== undefined) out.lang = note.lang;
  }
  return out;
}
