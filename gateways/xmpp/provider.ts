// The hub provider for Jabber users: a SIP watcher of a Jabber user becomes an XMPP subscription from
// the watcher's mapped JID (RFC 8048 §5.3: SIP SUBSCRIBE → XMPP subscribe), one per (SIP watcher,
// Jabber contact) because XMPP authorizes per user (hence upstreamIdentity).
import type { Logger } from 'pino';
import type { PidfDocument } from '../../src/formats/pidf.js';
import type { Provider, ProviderState, ProviderWatch } from '../../src/hub/types.js';
import { bareJid, resourceOf, type GatewayAddressing } from './address.js';
import type { AuthorizationStore, ConnectionState } from './component.js';
import { xmppErrorToReason } from './errors.js';
import { readPresence, xmppToPidf, type XmppPresence } from './presence-map.js';
import { presenceStanza, type PresenceStanza, type XNode } from './wire.js';

export interface StanzaSink {
  send(stanza: XNode, opts?: { queue?: boolean }): void;
  readonly state: ConnectionState;
}

/** A source of a contact's presence other than the component (roster mode's c2s session). */
export interface PresenceFeed {
  /** Calls `cb` with the contact's resources now (if known) and on every change, until stop(). */
  watch(watcherSip: string, contactJid: string, cb: (resources: ReadonlyMap<string, XmppPresence>) => void): { stop(): void } | undefined;
}

export interface XmppProviderOptions {
  addressing: GatewayAddressing;
  sink: StanzaSink;
  auths: AuthorizationStore;
  log: Logger;
  /** Least time between two subscribe/probe stanzas for one (watcher, contact) (RFC 8048 §8). */
  minRequestIntervalMs: number;
  /** Most resources remembered per contact (closed ones are dropped first). */
  maxResources?: number;
  feed?: PresenceFeed;
  /**
   * In a cluster: receive the presence stanzas of a Jabber contact that the node holding the component
   * connection shares (while this node watches the contact); returns the function that stops it.
   */
  hold?: (contactJid: string, receive: (p: PresenceStanza) => void) => () => void;
  now?: () => number;
}

type Upstream = NonNullable<ProviderState['upstream']>;

interface OutSub {
  watcherSip: string;
  contact: string;
  localJid: string;
  upstream: Upstream;
  resources: Map<string, XmppPresence>;
  /** Whether any presence (or a probe answer) has been seen since the last (re)connection. */
  known: boolean;
  listeners: Map<(s: ProviderState) => void, string>;
  retry: NodeJS.Timeout | undefined;
  feed: { stop(): void } | undefined;
  /** Ends hearing the contact's presence from the component connection's node (cluster). */
  unhold: (() => void) | undefined;
}

const subKey = (watcherSip: string, contact: string): string => `${watcherSip}\n${contact}`;

export class XmppProvider implements Provider {
  readonly name = 'xmpp-gateway';
  private readonly subs = new Map<string, OutSub>();
  private readonly lastRequest = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly o: XmppProviderOptions) {
    this.now = o.now ?? Date.now;
  }

  handles(resource: string): boolean {
    return this.o.addressing.jabberOf(resource) !== undefined;
  }

  /** XMPP authorizes per user (RFC 6121 §3): one upstream subscription per SIP watcher. */
  upstreamIdentity(_resource: string, watcher: string): string | undefined {
    return watcher;
  }

  /**
   * Loops and amplification (RFC 8048 §8): never the gateway's own addresses, only bridged domains,
   * and only watchers the gateway can give a JID (a SIP user, not another Jabber user).
   */
  refuse(resource: string, watcher: string): { status: number; reason: string; rlmiReason: string } | undefined {
    const ja = this.o.addressing.jabberOf(resource);
    if (!ja) return undefined;
    if (ja.refused === 'own') return { status: 482, reason: 'Loop Detected', rlmiReason: 'noresource' };
    if (ja.refused === 'domain') return { status: 403, reason: 'XMPP Domain Not Bridged', rlmiReason: 'rejected' };
    if (this.o.addressing.jabberOf(watcher) !== undefined || this.o.addressing.jidOfSipUser(watcher) === undefined) {
      return { status: 403, reason: 'Watcher Cannot Be Bridged', rlmiReason: 'rejected' };
    }
    return undefined;
  }

  watch(resource: string, update: (state: ProviderState) => void, watcher?: string): ProviderWatch {
    const ja = this.o.addressing.jabberOf(resource);
    const refusal = watcher === undefined ? { rlmiReason: 'rejected' } : this.refuse(resource, watcher);
    if (!ja || refusal || watcher === undefined) {
      update({ document: undefined, upstream: { state: 'terminated', reason: refusal?.rlmiReason ?? 'noresource' } });
      return { stop: () => undefined };
    }
    const key = subKey(watcher, ja.jid);
    let sub = this.subs.get(key);
    const fresh = !sub;
    if (!sub) {
      const rec = this.o.auths.get('out', watcher, ja.jid);
      sub = {
        watcherSip: watcher,
        contact: ja.jid,
        localJid: this.o.addressing.jidOfSipUser(watcher) as string,
        upstream: { state: rec?.state === 'active' ? 'active' : 'pending' },
        resources: new Map(),
        known: false,
        listeners: new Map(),
        retry: undefined,
        feed: undefined,
        unhold: undefined,
      };
      this.subs.set(key, sub);
      sub.unhold = this.o.hold?.(ja.jid, (p) => this.handle(p));
    }
    const s = sub;
    s.listeners.set(update, resource);
    if (s.upstream.state === 'terminated' && this.mayRequest(s)) s.upstream = { state: 'pending' };
    // Roster mode: the watcher's own c2s session already sees the contact (RFC 6121 roster).
    if (!s.feed && this.o.feed) {
      s.feed = this.o.feed.watch(watcher, ja.jid, (resources) => {
        s.resources = new Map(resources);
        s.known = true;
        s.upstream = { state: 'active' };
        this.emit(s);
      });
    }
    if (fresh || !s.known) this.request(s);
    update(this.stateOf(s, resource));
    return {
      stop: () => {
        if (!s.listeners.delete(update) || s.listeners.size > 0) return;
        // RFC 8048 §5.3 (SIP unsubscribe): the XMPP side gets `unavailable`; the authorization stays.
        if (!s.feed && s.upstream.state === 'active') this.o.sink.send(presenceStanza(s.localJid, s.contact, 'unavailable'));
        s.feed?.stop();
        s.feed = undefined;
        s.unhold?.();
        clearTimeout(s.retry);
        this.subs.delete(key);
      },
    };
  }

  /** Handles presence stanzas of the SIP-watches-Jabber direction; false when not ours. */
  handle(p: PresenceStanza): boolean {
    const t = p.type;
    if (t !== undefined && t !== 'unavailable' && t !== 'subscribed' && t !== 'unsubscribed' && t !== 'error') return false;
    const watcherSip = this.o.addressing.sipUserOfJid(p.to);
    if (watcherSip === undefined) return false;
    const contact = bareJid(p.from);
    const sub = this.subs.get(subKey(watcherSip, contact));
    const rec = this.o.auths.get('out', watcherSip, contact);
    if (!sub && !rec) return t === 'error' || t === 'unavailable' || t === undefined;
    switch (t) {
      case 'subscribed':
        // RFC 8048 §5.3.1: XMPP subscribed → NOTIFY active.
        void this.o.auths.put({ direction: 'out', sip: watcherSip, jid: contact, state: 'active', updatedAt: this.now() });
        if (sub) {
          sub.upstream = { state: 'active' };
          this.emit(sub);
        }
        break;
      case 'unsubscribed':
        // RFC 8048 §5.3.2: deny or revoke → NOTIFY terminated;reason=rejected.
        this.cancel(watcherSip, contact, sub, 'rejected');
        break;
      case 'error': {
        const e = p.error ?? { condition: 'undefined-condition', type: 'cancel' as const };
        const { reason, fate } = xmppErrorToReason(e);
        this.o.log.info({ watcher: watcherSip, contact, condition: e.condition, fate }, 'xmpp subscription error');
        if (fate === 'cancelled') this.cancel(watcherSip, contact, sub, reason);
        else if (sub && !sub.retry) {
          sub.retry = setTimeout(() => {
            sub.retry = undefined;
            if (this.subs.get(subKey(watcherSip, contact)) === sub) this.request(sub, true);
          }, this.o.minRequestIntervalMs);
          sub.retry.unref();
        }
        break;
      }
      default: {
        if (!sub) break;
        if (sub.feed) break; // roster mode reads presence from the c2s session
        // A contact's server sends available presence only to authorized subscribers (RFC 6121
        // §4.2.2): while pending it means approval whose `subscribed` we missed. `unavailable` proves
        // nothing (Prosody sends one from the bare JID when a subscription request arrives).
        if (sub.upstream.state === 'terminated' || (sub.upstream.state === 'pending' && t === 'unavailable')) break;
        if (sub.upstream.state !== 'active') {
          sub.upstream = { state: 'active' };
          void this.o.auths.put({ direction: 'out', sip: watcherSip, jid: contact, state: 'active', updatedAt: this.now() });
        }
        const resource = resourceOf(p.from);
        const pres = readPresence(t, p.show, p.status, p.priority, p.lang);
        if (resource === undefined) {
          // Unavailable from the bare JID (a probe answer with no resources): all resources are gone.
          sub.resources.clear();
          if (pres.available) sub.resources.set('', pres);
        } else {
          sub.resources.set(resource, pres);
          this.trim(sub);
        }
        sub.known = true;
        this.emit(sub);
      }
    }
    return true;
  }

  /** After a (re)connection: probe every watched, authorized contact; re-send pending subscribes. */
  resend(): void {
    for (const s of this.subs.values()) {
      if (s.feed) continue;
      s.known = false;
      this.request(s, true);
    }
  }

  stopAll(): void {
    for (const s of this.subs.values()) {
      clearTimeout(s.retry);
      s.feed?.stop();
      s.unhold?.();
    }
  }

  private cancel(watcherSip: string, contact: string, sub: OutSub | undefined, reason: string): void {
    void this.o.auths.delete('out', watcherSip, contact);
    if (!sub) return;
    sub.upstream = { state: 'terminated', reason };
    sub.resources.clear();
    this.emit(sub);
  }

  private mayRequest(s: OutSub): boolean {
    const last = this.lastRequest.get(subKey(s.watcherSip, s.contact));
    return last === undefined || this.now() - last >= this.o.minRequestIntervalMs;
  }

  /**
   * `subscribe` while unauthorized, `probe` once authorized (RFC 6121 §3.1, §4.3), at most one per
   * minRequestIntervalMs per (watcher, contact) unless forced by a reconnection.
   */
  private request(s: OutSub, force = false): void {
    if (s.feed || s.upstream.state === 'terminated') return;
    if (!force && !this.mayRequest(s)) return;
    const key = subKey(s.watcherSip, s.contact);
    this.lastRequest.set(key, this.now());
    if (this.lastRequest.size > 10_000) {
      const cutoff = this.now() - this.o.minRequestIntervalMs;
      for (const [k, t] of this.lastRequest) if (t < cutoff) this.lastRequest.delete(k);
    }
    if (s.upstream.state === 'active') {
      this.o.sink.send(presenceStanza(s.localJid, s.contact, 'probe'));
    } else {
      void this.o.auths.put({ direction: 'out', sip: s.watcherSip, jid: s.contact, state: 'pending', updatedAt: this.now() });
      this.o.sink.send(presenceStanza(s.localJid, s.contact, 'subscribe'), { queue: true });
    }
  }

  private trim(s: OutSub): void {
    const max = this.o.maxResources ?? 16;
    if (s.resources.size <= max) return;
    for (const [r, p] of s.resources) {
      if (s.resources.size <= max) break;
      if (!p.available) s.resources.delete(r);
    }
    while (s.resources.size > max) s.resources.delete(s.resources.keys().next().value as string);
  }

  private documentOf(s: OutSub, entity: string): PidfDocument | undefined {
    if (!s.known) return undefined;
    const base = this.o.addressing.sipOfJabber(s.contact);
    return xmppToPidf(entity, s.resources, (r) => (base === undefined || r === '' ? base : `${base};gr=${encodeURIComponent(r)}`));
  }

  private stateOf(s: OutSub, entity: string): ProviderState {
    if (s.upstream.state !== 'active') return { document: undefined, upstream: s.upstream };
    return { document: this.documentOf(s, entity), upstream: s.upstream };
  }

  private emit(s: OutSub): void {
    for (const [update, resource] of s.listeners) update(this.stateOf(s, resource));
  }
}
