// The XMPP front end: a Jabber user watching a SIP user. `subscribe` from juliet@xmpp.test to
// bob%example.test@sip.xmpp.test reaches the hub as a watcher of sip:bob@example.test and is decided by
// bob's pres-rules like any watcher (RFC 8048 §5.2; RFC 5025 sub-handling).
//
// The watcher's SIP identity for pres-rules is GatewayAddressing.watcherIdentity: the RFC 7247 §6.5
// mapping of the bare JID (sip:juliet@xmpp.test), or the paired SIP address when a domain pair is
// configured. Rules can thus name a Jabber user or a whole XMPP domain.
//
// The gateway is the SIP user's XMPP server here (XEP-0114 §3): it answers probes from the persisted
// authorization and pushes presence to each authorized watcher itself.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { PidfDocument } from '../../src/formats/pidf.js';
import { NoProviderError, type Hub } from '../../src/hub/hub.js';
import type { PresenceSnapshot, Provider, Watch } from '../../src/hub/types.js';
import type { WatcherView, WatcherViews } from '../../src/policy/view.js';
import { bareJid, type GatewayAddressing } from './address.js';
import type { AuthorizationStore } from './component.js';
import { authorizationFate, sipStatusToXmpp } from './errors.js';
import { pidfToXmpp } from './presence-map.js';
import type { StanzaSink } from './provider.js';
import { errorReply, presenceStanza, serialize, type PresenceStanza, type XNode } from './wire.js';

export interface FrontendOptions {
  /** The hub, or a view of it restricted to what Jabber watchers may reach. */
  hub: Pick<Hub, 'providerFor' | 'watch'>;
  /** What a Jabber watcher may see (the SIP user's pres-rules), and watcher info (RFC 3857): Jabber
   *  watchers appear there like SIP ones, so a user whose rules say confirm learns who asks. */
  views: WatcherViews;
  addressing: GatewayAddressing;
  sink: StanzaSink;
  auths: AuthorizationStore;
  log: Logger;
  /** The gateway's own provider: a Jabber user never watches a Jabber user through it (a loop). */
  self: Provider;
  now?: () => number;
}

/** A stable winfo id for a Jabber watcher of a SIP user (no JID in it, like SIP ids carry no Call-ID). */
const winfoId = (sip: string, jid: string): string => createHash('sha1').update(`xmpp|${jid}|${sip}`).digest('base64url').slice(0, 12);

/** Where a Jabber watcher stands with a SIP user, as last told to XMPP. */
type Told = 'nothing' | 'subscribed' | 'unsubscribed';

interface InSub {
  jid: string;
  sip: string;
  localJid: string;
  watcherSip: string;
  watch: Watch | undefined;
  view: WatcherView;
  told: Told;
  /** The last presence stanza sent (serialized), so unchanged state is not sent again. */
  lastPresence: string | undefined;
}

const subKey = (sip: string, jid: string): string => `${sip}\n${jid}`;

export class XmppFrontend {
  private readonly subs = new Map<string, InSub>();
  private readonly bySip = new Map<string, Set<InSub>>();
  private readonly now: () => number;

  constructor(private readonly o: FrontendOptions) {
    this.now = o.now ?? Date.now;
    o.views.onChange((presentity) => {
      for (const s of this.bySip.get(presentity) ?? []) this.evaluate(s, s.watch?.current());
    });
  }

  /** Re-creates the watches of persisted authorizations (after a Herald restart). */
  async restore(): Promise<number> {
    let n = 0;
    for (const rec of this.o.auths.all('in')) {
      const s = this.open(rec.jid, rec.sip);
      if (!s) continue;
      s.told = rec.state === 'active' ? 'subscribed' : 'nothing';
      await this.o.views.prepare(rec.sip);
      s.view.arrive();
      this.startWatch(s);
      n++;
    }
    return n;
  }

  /** Handles subscribe / unsubscribe / probe addressed to a SIP user's JID; false when not ours. */
  handle(p: PresenceStanza, raw: XNode): boolean {
    if (p.type !== 'subscribe' && p.type !== 'unsubscribe' && p.type !== 'probe') return false;
    const sip = this.o.addressing.sipUserOfJid(p.to);
    if (sip === undefined) {
      if (p.type === 'subscribe') this.o.sink.send(errorReply(raw, { condition: 'item-not-found', type: 'cancel' }));
      return true;
    }
    const jid = bareJid(p.from);
    const domain = jid.slice(jid.lastIndexOf('@') + 1);
    if (!this.o.addressing.isBridgedDomain(domain)) {
      // RFC 8048 §8: only configured XMPP domains are bridged.
      if (p.type === 'subscribe') this.o.sink.send(errorReply(raw, { condition: 'not-allowed', type: 'cancel' }));
      return true;
    }
    if (p.type === 'subscribe') void this.subscribe(jid, sip, raw);
    else if (p.type === 'unsubscribe') this.unsubscribe(jid, sip);
    else this.probe(jid, sip);
    return true;
  }

  /** After a (re)connection: current presence to every authorized watcher (XMPP lost it). */
  resend(): void {
    for (const s of this.subs.values()) {
      if (s.told !== 'subscribed') continue;
      s.lastPresence = undefined;
      this.evaluate(s, s.watch?.current());
    }
  }

  stopAll(): void {
    for (const s of this.subs.values()) s.watch?.stop();
    this.subs.clear();
    this.bySip.clear();
  }

  private open(jid: string, sip: string): InSub | undefined {
    const key = subKey(sip, jid);
    const existing = this.subs.get(key);
    if (existing) return existing;
    const localJid = this.o.addressing.jidOfSipUser(sip);
    const watcherSip = this.o.addressing.watcherIdentity(jid);
    if (localJid === undefined || watcherSip === undefined) return undefined;
    const view = this.o.views.open(sip, watcherSip, winfoId(sip, jid));
    const s: InSub = { jid, sip, localJid, watcherSip, watch: undefined, view, told: 'nothing', lastPresence: undefined };
    this.subs.set(key, s);
    let set = this.bySip.get(sip);
    if (!set) {
      set = new Set();
      this.bySip.set(sip, set);
    }
    set.add(s);
    return s;
  }

  private close(s: InSub): void {
    s.watch?.stop();
    s.watch = undefined;
    this.subs.delete(subKey(s.sip, s.jid));
    const set = this.bySip.get(s.sip);
    set?.delete(s);
    if (set && set.size === 0) this.bySip.delete(s.sip);
  }

  private async subscribe(jid: string, sip: string, raw: XNode): Promise<void> {
    const provider = this.o.hub.providerFor(sip);
    if (!provider) {
      this.o.sink.send(errorReply(raw, sipStatusToXmpp(404)));
      return;
    }
    if (provider === this.o.self) {
      // A Jabber user watching a Jabber user through the gateway: XMPP can do that natively.
      this.o.sink.send(errorReply(raw, { condition: 'not-allowed', type: 'cancel', text: 'Loop Detected' }));
      return;
    }
    const s = this.open(jid, sip);
    if (!s) {
      this.o.sink.send(errorReply(raw, { condition: 'jid-malformed', type: 'modify' }));
      return;
    }
    const refusal = provider.refuse?.(sip, s.watcherSip);
    if (refusal) {
      this.close(s);
      this.o.sink.send(errorReply(raw, sipStatusToXmpp(refusal.status, refusal.reason)));
      return;
    }
    await this.o.views.prepare(sip);
    if (this.subs.get(subKey(sip, jid)) !== s) return; // unsubscribed meanwhile
    s.view.arrive();
    if (s.told === 'subscribed') {
      // RFC 6121 §3.1.3: a subscribe for an existing authorization is answered `subscribed` again.
      this.o.sink.send(presenceStanza(s.localJid, s.jid, 'subscribed'), { queue: true });
      s.lastPresence = undefined;
    }
    if (!s.watch) this.startWatch(s);
    this.evaluate(s, s.watch?.current());
  }

  private startWatch(s: InSub): void {
    try {
      s.watch = this.o.hub.watch(s.sip, (snap) => this.evaluate(s, snap), s.watcherSip);
    } catch (e) {
      if (!(e instanceof NoProviderError)) throw e;
      this.o.log.info({ sip: s.sip }, 'xmpp watcher of a SIP user nobody serves');
    }
  }

  private unsubscribe(jid: string, sip: string): void {
    const s = this.subs.get(subKey(sip, jid));
    void this.o.auths.delete('in', sip, jid);
    const localJid = s?.localJid ?? this.o.addressing.jidOfSipUser(sip);
    if (s) {
      s.view.leave('timeout');
      this.close(s);
    }
    if (localJid === undefined) return;
    // RFC 6121 §3.3.3: the contact's server sends `unavailable` to the former subscriber; RFC 8048
    // §5.2.3 then confirms with `unsubscribed`.
    this.o.sink.send(presenceStanza(localJid, jid, 'unavailable'));
    this.o.sink.send(presenceStanza(localJid, jid, 'unsubscribed'), { queue: true });
  }

  /** RFC 6121 §4.3.2: current presence to an authorized prober, `unsubscribed` to an unknown one. */
  private probe(jid: string, sip: string): void {
    const s = this.subs.get(subKey(sip, jid));
    if (!s) {
      const localJid = this.o.addressing.jidOfSipUser(sip);
      if (localJid !== undefined) this.o.sink.send(presenceStanza(localJid, jid, 'unsubscribed'));
      return;
    }
    if (s.told !== 'subscribed') return; // pending: the answer is still being decided
    s.lastPresence = undefined;
    this.evaluate(s, s.watch?.current());
  }

  /** Decides (again) what the watcher may see and tells XMPP what changed. */
  private evaluate(s: InSub, snap: PresenceSnapshot | undefined): void {
    if (this.subs.get(subKey(s.sip, s.jid)) !== s) return;
    const v = s.view.see(snap);
    if (v.state === 'terminated' && (v.by === 'rules' || authorizationFate(v.reason) === 'cancelled')) {
      // RFC 5025 §3.2.1 block, or a SIP-side final refusal (RFC 8048 §5.2.2: 403/489/603 cancel for good).
      this.refuse(s);
      return;
    }
    if (v.state === 'pending') {
      // RFC 8048 §5.2.1: pending on the SIP side → nothing to XMPP (the server re-delivers the request).
      void this.o.auths.put({ direction: 'in', sip: s.sip, jid: s.jid, state: 'pending', updatedAt: this.now() });
      return;
    }
    if (s.told !== 'subscribed') {
      s.told = 'subscribed';
      void this.o.auths.put({ direction: 'in', sip: s.sip, jid: s.jid, state: 'active', updatedAt: this.now() });
      this.o.sink.send(presenceStanza(s.localJid, s.jid, 'subscribed'), { queue: true });
    }
    let doc: PidfDocument | undefined;
    if (v.state === 'terminated') doc = undefined; // transient SIP-side trouble: shown unavailable
    else if (v.polite || snap?.document) doc = v.show(snap?.document); // polite-block looks offline
    const out = pidfToXmpp(doc);
    const stanza = presenceStanza(s.localJid, s.jid, out.type, out);
    const text = serialize(stanza);
    if (text === s.lastPresence) return;
    s.lastPresence = text;
    this.o.sink.send(stanza);
  }

  private refuse(s: InSub): void {
    const told = s.told;
    s.view.leave('rejected');
    this.close(s);
    void this.o.auths.delete('in', s.sip, s.jid);
    if (told === 'subscribed') this.o.sink.send(presenceStanza(s.localJid, s.jid, 'unavailable'));
    // RFC 6121 §3.2: deny (pending) or cancel (granted) are both `unsubscribed`.
    this.o.sink.send(presenceStanza(s.localJid, s.jid, 'unsubscribed'), { queue: true });
  }
}
