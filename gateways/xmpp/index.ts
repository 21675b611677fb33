// The XMPP gateway (RFC 7247 architecture, RFC 8048 presence) assembled: the component connection
// (XEP-0114), the hub provider for Jabber users, the front end for Jabber watchers of SIP users and the
// roster lists. The only module of gateways/xmpp that src/server.ts imports.
import type { Logger } from 'pino';
import type { Hub } from '../../src/hub/hub.js';
import type { Provider } from '../../src/hub/types.js';
import type { WatcherViews } from '../../src/policy/view.js';
import type { Store } from '../../src/store/store.js';
import type { XmppClusterLink } from '../../src/cluster/xmpp.js';
import { GatewayAddressing, bareJid, parseJid } from './address.js';
import { AuthorizationStore, ComponentConnection, DISCO_INFO, type AuthorizationRecord, type EntityFactory } from './component.js';
import { XmppFrontend } from './frontend.js';
import { XmppProvider, type StanzaSink } from './provider.js';
import { RosterManager, type ClientFactory, type LinkedAccount, type RosterLists } from './roster.js';
import { el, errorReply, readInbound, readPresenceStanza, type PresenceStanza, type XNode } from './wire.js';
import { XmppMessaging } from './im.js';
import type { GatewayMessage } from '../../src/im/relay.js';
import type { ImBridge, ImOutcome } from '../../src/im/types.js';
import type { XmppGatewayConfig } from './config.js';

export interface XmppGatewayDeps {
  hub: Hub;
  /** What Jabber watchers of SIP users may see, and Herald's watcher info (presence.winfo). */
  views: WatcherViews;
  store: Store;
  log: Logger;
  localDomains: readonly string[];
  config: XmppGatewayConfig;
  /**
   * Instant messages from Jabber users to SIP users (RFC 7572) go here (the IM relay: the recipient's
   * IM rules, then delivery). Absent: messages are refused (service-unavailable).
   */
  deliverMessage?: (m: GatewayMessage) => Promise<ImOutcome>;
  /** On a cluster's node: how the gateway reaches the node holding the component connection. */
  cluster?: XmppClusterLink;
  /** Test seams. */
  entityFactory?: EntityFactory;
  clientFactory?: ClientFactory;
}

export interface RosterAccounts extends RosterLists {
  /** Links a Jabber account to a SIP user (credentials stored, never logged) and logs in. */
  link(sip: string, jid: string, password: string, service?: string): Promise<void>;
  unlink(sip: string): Promise<void>;
  listUriOf(sip: string): string | undefined;
}

export interface XmppGateway {
  provider: Provider;
  /** SIP MESSAGE to Jabber users (RFC 7572), when messaging is on. */
  im: ImBridge | undefined;
  roster: RosterAccounts;
  /** The component connection's state and the linked rosters (the admin API). */
  status(): { component: string; componentDomain: string; service: string; rosters: ReturnType<RosterManager['linked']> };
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createXmppGateway(deps: XmppGatewayDeps): XmppGateway {
  const { config: cfg, log: parentLog } = deps;
  const log = parentLog.child({ module: 'xmpp' });
  const local = new Set(deps.localDomains.map((d) => d.toLowerCase()));
  if (local.has(cfg.gateway_domain)) throw new Error(`[gateway.xmpp] gateway_domain ${cfg.gateway_domain} is one of [sip] domains`);
  const addressing = new GatewayAddressing({
    componentDomain: cfg.component_domain,
    gatewayDomain: cfg.gateway_domain,
    separator: cfg.separator,
    xmppDomains: cfg.xmpp_domains,
    domainPairs: cfg.domain_pairs,
    componentSipDomain: cfg.component_sip_domain,
  });
  const auths = new AuthorizationStore(deps.store.collection<AuthorizationRecord>('xmpp-authorization'));
  const conn = new ComponentConnection({
    service: cfg.service,
    domain: cfg.component_domain,
    secret: cfg.secret,
    backoff: { initialMs: cfg.reconnect_initial * 1000, maxMs: cfg.reconnect_max * 1000 },
    log,
    ...(deps.entityFactory ? { entityFactory: deps.entityFactory } : {}),
  });
  const roster = new RosterManager({
    accounts: deps.store.collection<LinkedAccount>('xmpp-account'),
    addressing,
    log,
    listName: cfg.roster_list,
    defaultService: cfg.c2s_service,
    reconnectMs: cfg.reconnect_initial * 1000,
    ...(deps.clientFactory ? { clientFactory: deps.clientFactory } : {}),
  });
  const cluster = deps.cluster;
  // In a cluster a node without the component connection online sends through the node that has it.
  const sink: StanzaSink = cluster
    ? {
        send: (stanza, opts) => (conn.state === 'online' ? conn.send(stanza, opts) : cluster.forward(stanza, opts?.queue ?? false)),
        get state() {
          return conn.state;
        },
      }
    : conn;
  const holdContact = cluster
    ? (contactJid: string, receive: (p: PresenceStanza) => void): (() => void) => {
        const sip = addressing.sipOfJabber(contactJid);
        if (sip === undefined) return () => undefined;
        return cluster.hold(sip, (n) => {
          const p = readPresenceStanza(n);
          if (p) receive(p);
        });
      }
    : undefined;
  const provider = new XmppProvider({ addressing, sink, auths, log, minRequestIntervalMs: cfg.min_request_interval * 1000, feed: roster, ...(holdContact ? { hold: holdContact } : {}) });
  // Jabber users may watch users of Herald's own domains only: the gateway is not an open relay into
  // other SIP domains (RFC 8048 §8 amplification).
  const localHub: Pick<Hub, 'providerFor' | 'watch'> = {
    providerFor: (r) => (local.has(r.slice(r.lastIndexOf('@') + 1).toLowerCase()) ? deps.hub.providerFor(r) : undefined),
    watch: (r, l, w) => deps.hub.watch(r, l, w),
  };
  const frontend = new XmppFrontend({ hub: localHub, views: deps.views, addressing, sink: conn, auths, log, self: provider });

  const deliver = deps.deliverMessage;
  const messaging = deliver
    ? new XmppMessaging({ addressing, sink: conn, refuse: (r, s) => provider.refuse(r, s), deliver, log })
    : undefined;

  conn.onStanza((n) => route(n));
  conn.onOnline(() => {
    provider.resend();
    frontend.resend();
    cluster?.online();
  });
  cluster?.onForwarded(
    (stanza, queue) => {
      if (conn.state === 'online') conn.send(stanza, { queue });
    },
    () => {
      if (conn.state !== 'online') provider.resend();
    },
  );

  function route(n: XNode): void {
    const r = readInbound(n, cfg.component_domain, (j) => parseJid(j) !== undefined);
    if ('drop' in r) {
      log.debug({ why: r.drop }, 'xmpp stanza dropped');
      return;
    }
    if ('reply' in r) {
      log.debug({ why: r.why }, 'xmpp stanza refused');
      conn.send(r.reply);
      return;
    }
    const st = r.stanza;
    if (st.kind === 'presence') {
      if (!frontend.handle(st.presence, st.node)) {
        provider.handle(st.presence);
        // The other nodes whose Jabber-contact watchers hold this contact hear it too (src/cluster/xmpp.ts).
        const contactSip = addressing.sipOfJabber(bareJid(st.presence.from));
        if (cluster && contactSip !== undefined) cluster.share(contactSip, st.node);
      }
      return;
    }
    if (st.kind === 'iq') {
      if (st.type === 'error' || st.type === 'result') return; // RFC 6120 §8.2.3: never answer a response
      if (st.type === 'get' && st.to === cfg.component_domain && st.payload?.name === 'query' && st.payload.attrs['xmlns'] === DISCO_INFO) {
        // XEP-0030 / XEP-0100 §4.1: a gateway to SIP.
        conn.send(
          el('iq', { type: 'result', id: st.id, from: st.to, to: st.from },
            el('query', { xmlns: DISCO_INFO },
              el('identity', { category: 'gateway', type: 'sip', name: 'Herald SIP gateway' }),
              el('feature', { var: DISCO_INFO }))),
        );
        return;
      }
      conn.send(errorReply(st.node, { condition: 'service-unavailable', type: 'cancel' }));
      return;
    }
    if (st.type === 'error') return; // RFC 6120 §8.3.1: never answer an error
    if (messaging) {
      messaging.receive(st.node).catch((err: unknown) => log.error({ err: String(err) }, 'xmpp message not delivered'));
      return;
    }
    conn.send(errorReply(st.node, { condition: 'service-unavailable', type: 'cancel' }));
  }

  return {
    provider,
    im: messaging,
    roster,
    status: () => ({ component: conn.state, componentDomain: cfg.component_domain, service: cfg.service, rosters: roster.linked() }),
    async start() {
      const n = await auths.load();
      const restored = await frontend.restore();
      log.info({ authorizations: n, jabberWatchers: restored, component: cfg.component_domain }, 'xmpp gateway starting');
      await Promise.all([conn.start(), roster.start()]);
    },
    async stop() {
      provider.stopAll();
      frontend.stopAll();
      await roster.stop();
      await conn.stop();
    },
  };
}

export { GatewayAddressing } from './address.js';
export type { RosterLists } from './roster.js';
