// What the admin API shows: plain JSON views of what Herald holds, read through the components'
// public methods only (presence agent, notifier, watcher registry, RLS, gateways, users). Pure apart
// from reading them; the HTTP side (routing, auth, paging) is in server.ts.
import { serializePidf, type PidfDocument } from '../formats/pidf.js';
import { childElements, textOf, type XmlElement } from '../formats/xml.js';
import type { SubscriptionRecord } from '../events/subscription.js';
import { watcherId, type WatcherRecord } from '../presence/watchers.js';
import type { Herald } from '../server.js';
import type { PublicationRecord } from '../presence/pa.js';

export type Colour = 'green' | 'amber' | 'red' | 'grey';

/** The parts of Herald the views read (a subset of Herald, so tests can build views of a running one). */
export type AdminSource = Pick<Herald, 'config' | 'pa' | 'notifier' | 'watchers' | 'rls' | 'sipGateway' | 'xmpp' | 'users' | 'hub' | 'addresses'> & {
  lastNotify(key: string): { at: number; status: number | 'timeout' } | undefined;
};

/** RPID activities (RFC 4480 §3.2) that make a phone show "busy" or "away" rather than "available". */
const BUSY = new Set(['busy', 'on-the-phone', 'meeting', 'performance', 'presentation', 'in-transit', 'worship']);
const AWAY = new Set(['away', 'vacation', 'sleeping', 'appointment', 'holiday', 'lunch', 'meal', 'steering', 'travel']);

function descendants(el: XmlElement, name: string): XmlElement[] {
  const out: XmlElement[] = [];
  const walk = (e: XmlElement): void => {
    for (const c of childElements(e)) {
      if (c.name === name) out.push(c);
      walk(c);
    }
  };
  walk(el);
  return out;
}

export function activitiesOf(doc: PidfDocument): string[] {
  return doc.persons.flatMap((p) => descendants(p, 'activities')).flatMap((a) => childElements(a).map((c) => c.name));
}

/** The colour a phone would show: grey closed or unknown; open is green unless RPID says busy or away. */
export function colourOf(doc: PidfDocument | undefined): Colour {
  if (!doc || !doc.tuples.some((t) => t.basic === 'open')) return 'grey';
  const acts = activitiesOf(doc);
  if (acts.some((a) => BUSY.has(a))) return 'red';
  if (acts.some((a) => AWAY.has(a))) return 'amber';
  return 'green';
}

function noteOf(doc: PidfDocument | undefined): string | undefined {
  const n = doc?.notes[0] ?? doc?.tuples.flatMap((t) => childElements(t.element).filter((c) => c.name === 'note'))[0];
  return n ? textOf(n) : undefined;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export interface PresentitySummary {
  aor: string;
  basic: 'open' | 'closed' | 'none';
  colour: Colour;
  note: string | undefined;
  activities: string[];
  publications: number;
  watchers: number;
}

/** Every presentity Herald knows of: local users who published and those somebody watches. */
export function presentityNames(h: AdminSource): string[] {
  const names = new Set(h.pa.presentities());
  // Watched directly, in a list, or by a Jabber user: every watch goes through the hub.
  for (const r of h.hub.resources()) if (h.pa.handles(r) && !h.rls.isList(r)) names.add(r);
  return [...names].sort();
}

export function summary(h: AdminSource, aor: string): PresentitySummary {
  const doc = h.pa.document(aor);
  return {
    aor,
    basic: !doc ? 'none' : doc.tuples.some((t) => t.basic === 'open') ? 'open' : 'closed',
    colour: colourOf(doc),
    note: noteOf(doc),
    activities: doc ? activitiesOf(doc) : [],
    publications: h.pa.publicationsOf(aor).length,
    watchers: h.watchers.list(aor).filter((w) => w.status === 'active' || w.status === 'pending').length,
  };
}

/** One publication: which device (RFC 4479 deviceID, else the tuple ids), its ETag and expiry. */
function publication(p: PublicationRecord, now: number): Record<string, unknown> {
  const devices = [...p.body.matchAll(/<(?:[\w-]+:)?deviceID>\s*([^<\s]+)\s*</g)].map((m) => m[1]);
  const tuples = [...p.body.matchAll(/<(?:[\w-]+:)?tuple\b[^>]*\bid="([^"]+)"/g)].map((m) => m[1]);
  return { etag: p.etag, devices, tuples, publishedAt: iso(p.publishedAt), expiresAt: iso(p.expiresAt), expiresIn: Math.max(0, Math.round((p.expiresAt - now) / 1000)) };
}

export function presentityDetail(h: AdminSource, aor: string, now = Date.now()): Record<string, unknown> | undefined {
  const doc = h.pa.document(aor);
  const pubs = h.pa.publicationsOf(aor);
  const watchers = watchersOf(h, aor);
  if (!doc && pubs.length === 0 && watchers.length === 0 && !h.pa.handles(aor)) return undefined;
  return {
    ...summary(h, aor),
    document: doc ? serializePidf(doc) : undefined,
    publicationList: pubs.sort((a, b) => a.publishedAt - b.publishedAt).map((p) => publication(p, now)),
    watcherList: watchers,
  };
}

function flowText(r: SubscriptionRecord): string {
  return `${r.flow.protocol.toLowerCase()}:${r.flow.address}:${r.flow.port}`;
}

/** The presentity's watchers (RFC 3857 view): state, since, event, and where the subscription came from. */
export function watchersOf(h: AdminSource, aor: string): Record<string, unknown>[] {
  const byId = new Map<string, SubscriptionRecord>();
  for (const r of h.notifier.records()) if (r.resource === aor) byId.set(watcherId(r.key), r);
  return h.watchers
    .list(aor)
    .sort((a, b) => a.since - b.since)
    .map((w: WatcherRecord) => {
      const sub = byId.get(w.id);
      // A live watcher without a SIP dialog here came through a gateway (a Jabber watcher); an ended one has none.
      const from = sub ? flowText(sub) : w.status === 'active' || w.status === 'pending' ? 'gateway' : '-';
      return { watcher: w.uri, id: w.id, status: w.status, event: w.event, package: w.package, since: iso(w.since), updatedAt: iso(w.updatedAt), from };
    });
}

export function subscriptionView(h: AdminSource, r: SubscriptionRecord, now = Date.now()): Record<string, unknown> {
  const last = h.lastNotify(r.key);
  return {
    key: r.key,
    event: r.event,
    resource: r.resource,
    watcher: r.watcher,
    dialog: { callId: r.callId, localTag: r.localTag, remoteTag: r.remoteTag, remoteTarget: r.remoteTarget, localCseq: r.localCseq, remoteCseq: r.remoteCseq },
    contentType: r.contentType,
    from: flowText(r),
    expiresAt: iso(r.expiresAt),
    expiresIn: Math.max(0, Math.round((r.expiresAt - now) / 1000)),
    lastNotify: last ? { at: iso(last.at), status: last.status } : undefined,
  };
}

export function peersView(h: AdminSource, now = Date.now()): Record<string, unknown> {
  const links = h.sipGateway?.links() ?? [];
  const byDomain: Record<string, unknown[]> = {};
  for (const l of links) {
    const domain = l.resource.slice(l.resource.lastIndexOf('@') + 1).replace(/[;>].*$/, '');
    (byDomain[domain] ??= []).push({ ...l, expiresAt: iso(l.expiresAt), expiresIn: Math.max(0, Math.round((l.expiresAt - now) / 1000)) });
  }
  return {
    sip: { enabled: h.sipGateway !== undefined, policy: h.config.gateway.sip.policy, domains: byDomain, reg: h.config.gateway.sip.reg.enabled ? { registrar: h.config.gateway.sip.reg.registrar } : undefined },
    xmpp: h.xmpp ? { enabled: true, ...h.xmpp.status() } : { enabled: false },
  };
}

export async function usersView(h: AdminSource): Promise<Record<string, unknown>[]> {
  return (await h.users.list()).map((u) => ({ aor: u.aor, username: u.username, realm: u.realm, createdAt: iso(u.createdAt) }));
}
