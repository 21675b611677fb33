// Roster mode: a SIP user who linked a Jabber account gets that account's roster (RFC 6121 §2) as a
// resource list `sip:<user>+roster@<domain>` (name configurable) for the RLS, kept live by roster
// pushes (§2.1.6). Herald logs in over c2s with @xmpp/client; the session's presence subscriptions
// are the user's own, so each contact's presence is fed to the provider from it (no second
// authorization from the component's JID is needed).
//
// Credentials live in a store Collection and are never logged: log lines name the SIP user and the
// bare JID only.
import { client as createClient, type XmppClient } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import type { Logger } from 'pino';
import type { Collection } from '../../src/store/store.js';
import { bareJid, parseSipUri, resourceOf, type GatewayAddressing } from './address.js';
import { readPresence, type XmppPresence } from './presence-map.js';
import type { PresenceFeed } from './provider.js';
import { children, el, fromLtx, readPresenceStanza, toLtx, type XNode } from './wire.js';

export const NS_ROSTER = 'jabber:iq:roster';

export interface RosterItem {
  jid: string;
  /** RFC 6121 §2.1.2.5. */
  subscription: 'none' | 'to' | 'from' | 'both';
  ask?: 'subscribe';
  name?: string;
}

export interface LinkedAccount {
  /** The SIP address of record that linked the account. */
  sip: string;
  jid: string;
  password: string;
  /** xmpp://host:port; '' uses the gateway's configured c2s service. */
  service: string;
  /** The roster as last seen, so the list is known before the session is up. */
  roster: RosterItem[];
}

export interface RosterLists {
  /** The members (SIP URIs) of a roster list URI; undefined when the URI is not a roster list. */
  members(listUri: string): string[] | undefined;
  /** The SIP user whose roster the list is: only they may subscribe to it. */
  owner(listUri: string): string | undefined;
  onChange(listener: (listUri: string) => void): void;
}

export type ClientFactory = (opts: { service: string; domain: string; username: string; password: string; resource: string }) => XmppClient;

export interface RosterOptions {
  accounts: Collection<LinkedAccount>;
  addressing: GatewayAddressing;
  log: Logger;
  /** The list URI of a SIP user: `{user}` and `{domain}` are replaced, e.g. "{user}+roster@{domain}". */
  listName: string;
  /** The c2s service for accounts that name none, e.g. "xmpp://127.0.0.1:5222". */
  defaultService: string;
  reconnectMs: number;
  clientFactory?: ClientFactory;
}

interface Session {
  account: LinkedAccount;
  client: XmppClient | undefined;
  listUri: string;
  presence: Map<string, Map<string, XmppPresence>>;
  feeds: Map<string, Set<(r: ReadonlyMap<string, XmppPresence>) => void>>;
}

function readItem(n: XNode): RosterItem | undefined {
  const jid = n.attrs['jid'];
  if (jid === undefined) return undefined;
  const sub = n.attrs['subscription'];
  const item: RosterItem = { jid: bareJid(jid), subscription: sub === 'to' || sub === 'from' || sub === 'both' ? sub : 'none' };
  if (n.attrs['ask'] === 'subscribe') item.ask = 'subscribe';
  if (n.attrs['name'] !== undefined) item.name = n.attrs['name'];
  return item;
}

export class RosterManager implements RosterLists, PresenceFeed {
  private readonly sessions = new Map<string, Session>();
  private readonly listeners: ((listUri: string) => void)[] = [];
  private stopped = false;

  constructor(private readonly o: RosterOptions) {}

  listUriOf(sip: string): string | undefined {
    const u = parseSipUri(sip);
    if (!u || u.user === '') return undefined;
    return `sip:${this.o.listName.replaceAll('{user}', u.user).replaceAll('{domain}', u.host)}`;
  }

  /** The linked accounts (never their passwords): SIP user, JID, list URI, contacts, session up (the admin API). */
  linked(): { sip: string; jid: string; list: string; contacts: number; online: boolean }[] {
    return [...this.sessions.values()].map((s) => ({ sip: s.account.sip, jid: s.account.jid, list: s.listUri, contacts: s.account.roster.length, online: s.client?.status === 'online' }));
  }

  async start(): Promise<void> {
    for (const [, account] of await this.o.accounts.all()) this.open(account);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.sessions.values()].map((s) => this.close(s)));
    this.sessions.clear();
  }

  /** Links a Jabber account to a SIP user (replacing any earlier link) and logs in. */
  async link(sip: string, jid: string, password: string, service = ''): Promise<void> {
    const old = this.sessions.get(sip);
    if (old) await this.close(old);
    const account: LinkedAccount = { sip, jid: bareJid(jid), password, service, roster: [] };
    await this.o.accounts.put(sip, account);
    this.open(account);
  }

  async unlink(sip: string): Promise<void> {
    const s = this.sessions.get(sip);
    this.sessions.delete(sip);
    await this.o.accounts.delete(sip);
    if (s) {
      await this.close(s);
      this.changed(s.listUri);
    }
  }

  members(listUri: string): string[] | undefined {
    for (const s of this.sessions.values()) {
      if (s.listUri !== listUri) continue;
      const out: string[] = [];
      for (const item of s.account.roster) {
        const sip = this.o.addressing.sipOfJabber(item.jid);
        if (sip !== undefined) out.push(sip);
      }
      return out;
    }
    return undefined;
  }

  owner(listUri: string): string | undefined {
    for (const s of this.sessions.values()) if (s.listUri === listUri) return s.account.sip;
    return undefined;
  }

  onChange(listener: (listUri: string) => void): void {
    this.listeners.push(listener);
  }

  /** PresenceFeed: a contact the SIP user's own roster is subscribed to (RFC 6121 `to`/`both`). */
  watch(watcherSip: string, contactJid: string, cb: (r: ReadonlyMap<string, XmppPresence>) => void): { stop(): void } | undefined {
    const s = this.sessions.get(watcherSip);
    const item = s?.account.roster.find((i) => i.jid === contactJid);
    if (!s || !item || (item.subscription !== 'to' && item.subscription !== 'both')) return undefined;
    let set = s.feeds.get(contactJid);
    if (!set) {
      set = new Set();
      s.feeds.set(contactJid, set);
    }
    set.add(cb);
    const known = s.presence.get(contactJid);
    if (known) cb(known);
    return {
      stop: () => {
        set.delete(cb);
        if (set.size === 0) s.feeds.delete(contactJid);
      },
    };
  }

  private changed(listUri: string): void {
    for (const l of this.listeners) {
      try {
        l(listUri);
      } catch (e) {
        this.o.log.error({ err: String(e) }, 'roster list listener failed');
      }
    }
  }

  private open(account: LinkedAccount): void {
    const listUri = this.listUriOf(account.sip);
    if (listUri === undefined || this.stopped) return;
    const s: Session = { account, client: undefined, listUri, presence: new Map(), feeds: new Map() };
    this.sessions.set(account.sip, s);
    const at = account.jid.lastIndexOf('@');
    const factory = this.o.clientFactory ?? createClient;
    const c = factory({
      service: account.service || this.o.defaultService,
      domain: account.jid.slice(at + 1),
      username: account.jid.slice(0, at),
      password: account.password,
      resource: 'herald',
    });
    s.client = c;
    c.reconnect.delay = this.o.reconnectMs;
    c.on('error', (err) => this.o.log.debug({ sip: account.sip, jid: account.jid, err: err.message }, 'roster session error'));
    c.on('status', (status) => {
      if (status === 'online' || status === 'disconnect') this.o.log.info({ sip: account.sip, jid: account.jid }, `roster session ${status}`);
    });
    // RFC 6121 §2.1.6: roster pushes, answered with an empty result by xmpp.js.
    c.iqCallee.set(NS_ROSTER, 'query', ({ stanza }) => {
      const iq = fromLtx(stanza);
      const from = iq.attrs['from'];
      // §2.1.6: a push not from the account's own server/JID is ignored (spoofing).
      if (from !== undefined && bareJid(from) !== account.jid) return true;
      const q = children(iq, 'query', NS_ROSTER)[0];
      for (const n of q ? children(q, 'item') : []) this.applyItem(s, n);
      return true;
    });
    c.on('stanza', (e: Element) => this.onStanza(s, fromLtx(e)));
    c.on('online', () => void this.fetch(s));
    c.start().catch((err: unknown) => this.o.log.warn({ sip: account.sip, jid: account.jid, err: String(err) }, 'roster session failed to start'));
  }

  private async fetch(s: Session): Promise<void> {
    const c = s.client;
    if (!c) return;
    try {
      const res = fromLtx(await c.iqCaller.request(toLtx(el('iq', { type: 'get' }, el('query', { xmlns: NS_ROSTER })))));
      const q = children(res, 'query', NS_ROSTER)[0];
      const items: RosterItem[] = [];
      for (const n of q ? children(q, 'item') : []) {
        const it = readItem(n);
        if (it) items.push(it);
      }
      s.account = { ...s.account, roster: items };
      await this.o.accounts.put(s.account.sip, s.account);
      this.changed(s.listUri);
      // RFC 6121 §4.2: initial presence makes the server probe every `to`/`both` contact. Priority −1
      // (§4.7.2.3): Herald's resource never receives the user's messages.
      await c.send(toLtx(el('presence', {}, el('priority', {}, '-1'))));
    } catch (err) {
      this.o.log.warn({ sip: s.account.sip, jid: s.account.jid, err: String(err) }, 'roster fetch failed');
    }
  }

  private applyItem(s: Session, n: XNode): void {
    const jid = n.attrs['jid'];
    if (jid === undefined) return;
    const bare = bareJid(jid);
    const rest = s.account.roster.filter((i) => i.jid !== bare);
    const item = n.attrs['subscription'] === 'remove' ? undefined : readItem(n);
    s.account = { ...s.account, roster: item ? [...rest, item] : rest };
    void this.o.accounts.put(s.account.sip, s.account);
    this.changed(s.listUri);
  }

  private onStanza(s: Session, n: XNode): void {
    const p = readPresenceStanza(n);
    if (!p) return;
    if (p.type !== undefined && p.type !== 'unavailable') return;
    const contact = bareJid(p.from);
    if (contact === s.account.jid) return; // the user's own other resources
    let map = s.presence.get(contact);
    if (!map) {
      map = new Map();
      s.presence.set(contact, map);
    }
    const pres = readPresence(p.type, p.show, p.status, p.priority, p.lang);
    const r = resourceOf(p.from);
    if (r === undefined) {
      map.clear();
      if (pres.available) map.set('', pres);
    } else map.set(r, pres);
    for (const cb of s.feeds.get(contact) ?? []) cb(map);
  }

  private async close(s: Session): Promise<void> {
    const c = s.client;
    s.client = undefined;
    if (!c) return;
    c.reconnect.stop();
    try {
      await c.stop();
    } catch {
      // already down
    }
  }
}
