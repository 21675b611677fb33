// The XMPP gateway (RFC 7247 architecture, RFC 8048 presence) assembled: the component connection
// (XEP-0114), the hub provider for Jabber users, the front end for Jabber watchers of SIP users and the
// roster lists. The only module of gateways/xmpp that src/server.ts imports.
import type { Logger } from 'pino';
import type { Hub } from '../../src/hub/hub.js';
import type { Provider } from '../../src/hub/types.js';
import type { WatcherViews } from '../../src/policy/view.js';
import type { Store } from '../../src/store/store.js';
import { GatewayAddressing, bareJid } from './address.js';
import { AuthorizationStore, ComponentConnection, DISCO_INFO, type AuthorizationRecord, type EntityFactory } from './component.js';
import { XmppFrontend } from './frontend.js';
import { XmppProvider, type StanzaSink } from './provider.js';
import { RosterManager, type ClientFactory, type LinkedAccount, type RosterLists } from './roster.js';
import { el, errorReply, readPresenceStanza, type PresenceStanza, type XNode } from './wire.js';
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

/**
 * The gateway on a cluster's node (implemented by src/cluster/xmpp.ts). One node holds the component
 * connection (the XMPP server accepts one per component domain; its lease decides which node); SIP
 * watchers of Jabber contacts may be held by any node. A node whose connection is not online forwards
 * its stanzas to the one that is, and that node shares each contact's presence with the nodes watching
 * the contact (`res:<the contact's SIP address>`).
 */
export interface XmppClusterLink {
  /** A stanza this node cannot send itself: the node whose component connection is online sends it. */
  forward(stanza: XNode, queue: boolean): void;
  /** Stanzas forwarded by other nodes (sent here when this node's connection is online), and their call to probe again (a new holder is online). */
  onForwarded(send: (stanza: XNode, queue: boolean) => void, resend: () => void): void;
  /** This node's component connection came online: the other nodes probe their contacts through it. */
  online(): void;
  /** A presence stanza from a Jabber contact, for the nodes watching it. */
  share(contactSip: string, stanza: XNode): void;
  /** This node watches a Jabber contact: `receive` gets the stanzas the connection's node shares. */
  hold(contactSip: string, receive: (stanza: XNode) => void): () => void;
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
    const type = n.attrs['type'];
    if (n.name === 'presence') {
      const p = readPresenceStanza(n);
      if (!p) return;
      if (!frontend.handle(p, n)) {
        provider.handle(p);
        const contactSip = addressing.sipOfJabber(bareJid(p.from));
        if (cluster && contactSip !== undefined) cluster.share(contactSip, n);
      }
      return;
    }
    if (type === 'error' || type === 'result') return; // RFC 6120 §8.2.3: never answer an error
    if (n.name === 'iq' && type === 'get' && n.attrs['to'] === cfg.component_domain && n.children.some((c) => typeof c !== 'string' && c.name === 'query' && c.attrs['xmlns'] === DISCO_INFO)) {
      // XEP-0030 / XEP-0100 §4.1: a gateway to SIP.
      conn.send(
        el('iq', { type: 'result', id: n.attrs['id'], from: n.attrs['to'], to: n.attrs['from'] },
          el('query', { xmlns: DISCO_INFO },
            el('identity', { category: 'gateway', type: 'sip', name: 'Herald SIP gateway' }),
            el('feature', { var: DISCO_INFO }))),
      );
      return;
    }
    if (n.name === 'iq' && (type === 'get' || type === 'set')) {
      conn.send(errorReply(n, { condition: 'service-unavailable', type: 'cancel' }));
      return;
    }
    if (n.name === 'message') {
      if (messaging) {
        messaging.receive(n).catch((err: unknown) => log.error({ err: String(err) }, 'xmpp message not delivered'));
        return;
      }
      conn.send(errorReply(n, { condition: 'service-unavailable', type: 'cancel' }));
    }
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
