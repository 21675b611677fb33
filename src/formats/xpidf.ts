// application/xpidf+xml: the pre-standard format (draft-rosenberg-impp-pidf, "RFCxxxx XPIDF 1.0")
// that old Cisco, Polycom, Snom and Microsoft phones read for BLF lamps and buddy lists.
// The shape below is the one Asterisk (chan_sip and res_pjsip_xpidf_body_generator), SER's pa
// module and the phones themselves emit, DOCTYPE line included: some phones look for it.
//
//   <?xml version="1.0"?>
//   <!DOCTYPE presence PUBLIC "-//IETF//DTD RFCxxxx XPIDF 1.0//EN" "xpidf.dtd">
//   <presence>
//   <presentity uri="sip:alice@example.com;method=SUBSCRIBE"/>
//   <atom id="alice">
//   <address uri="sip:alice@192.0.2.1" priority="0.800000">
//   <status status="open"/>
//   <msnsubstatus substatus="online"/>
//   </address>
//   </atom>
//   </presence>
//
// Phones read one atom with one address, so the whole document is summarized into one:
// status open if any tuple is open. The substatus (Microsoft's values, [MS-SIP] "msnsubstatus":
// online, away, idle, busy, berightback, onthephone, outtolunch; plus "offline" as Asterisk sends
// it) comes from the person's RPID activities (RFC 4480 §3.2) where the mapping is obvious;
// on-the-phone also sets status "inuse", as Asterisk does for a busy extension.

import { NS, childElements, serializeXml, textOf, type XmlElement } from './xml.js';
import type { PidfDocument, PidfTuple } from './pidf.js';

const PROLOG =
  '<?xml version="1.0"?>\r\n' +
  '<!DOCTYPE presence PUBLIC "-//IETF//DTD RFCxxxx XPIDF 1.0//EN" "xpidf.dtd">\r\n';

type Substatus = 'online' | 'away' | 'idle' | 'busy' | 'onthephone' | 'outtolunch' | 'offline';

// RPID activity -> msnsubstatus, in order of precedence (the first that applies wins).
const ACTIVITY_MAP: ReadonlyArray<[Substatus, readonly string[]]> = [
  ['onthephone', ['on-the-phone']],
  ['busy', ['busy', 'meeting', 'appointment', 'presentation', 'performance']],
  ['away', ['away', 'vacation', 'holiday', 'sleeping', 'permanent-absence', 'travel', 'in-transit']],
  ['outtolunch', ['meal', 'breakfast', 'lunch', 'dinner']],
];

function activitiesOf(doc: PidfDocument): Set<string> {
  const out = new Set<string>();
  for (const person of doc.persons) {
    for (const acts of childElements(person, NS.RPID, 'activities')) {
      for (const a of childElements(acts, NS.RPID)) out.add(a.name);
    }
  }
  return out;
}

function isIdle(doc: PidfDocument): boolean {
  // RFC 4480 §3.10: <rpid:user-input>idle</rpid:user-input>.
  return doc.persons.some((p) => childElements(p, NS.RPID, 'user-input').some((u) => textOf(u) === 'idle'));
}

function substatusOf(doc: PidfDocument, open: boolean): Substatus {
  if (!open) return 'offline';
  const acts = activitiesOf(doc);
  for (const [sub, names] of ACTIVITY_MAP) if (names.some((n) => acts.has(n))) return sub;
  return isIdle(doc) ? 'idle' : 'online';
}

/** The tuple whose contact the phone is shown: the best open one, else the best one. */
function bestTuple(tuples: readonly PidfTuple[]): PidfTuple | undefined {
  let best: PidfTuple | undefined;
  const score = (t: PidfTuple): number => (t.basic === 'open' ? 2 : 0) + (t.priority ?? 0.5);
  for (const t of tuples) if (best === undefined || score(t) > score(best)) best = t;
  return best;
}

/** XPIDF phones want a SIP URI; a pres: entity (RFC 3859) is shown as sip:. */
function sipUri(uri: string): string {
  return /^pres:/i.test(uri) ? `sip:${uri.slice(5)}` : uri;
}

function atomId(entity: string): string {
  const user = /^[a-z][a-z0-9+.-]*:([^@;?]+)@/i.exec(entity)?.[1];
  const id = (user ?? '').replace(/[^A-Za-z0-9_.-]/g, '');
  return id === '' ? '1' : id;
}

const el = (name: string, attrs: Record<string, string>, children: XmlElement[] = []): XmlElement =>
  ({ ns: '', name, attrs, children });

export function renderXpidf(doc: PidfDocument): string {
  const open = doc.tuples.some((t) => t.basic === 'open');
  const best = bestTuple(doc.tuples);
  const entity = sipUri(doc.entity);
  const sub = substatusOf(doc, open);
  const status = sub === 'onthephone' ? 'inuse' : open ? 'open' : 'closed';
  const priority = (best?.priority ?? 0.8).toFixed(6);
  const root = el('presence', {}, [
    el('presentity', { uri: `${entity};method=SUBSCRIBE` }),
    el('atom', { id: atomId(entity) }, [
      el('address', { uri: best?.contact ?? entity, priority }, [
        el('status', { status }),
        el('msnsubstatus', { substatus: sub }),
      ]),
    ]),
  ]);
  return PROLOG + serializeXml(root, { declaration: false }) + '\r\n';
}
