// The XMPP gateway (RFC 7247 architecture, RFC 8048 presence) assembled: the component connection
// (XEP-0114), the hub provider for Jabber users, the front end for Jabber watchers of SIP users and the
// roster lists. The only module of gateways/xmpp that src/server.ts imports.
import { z } from 'zod';
import type { Logger } from 'pino';
import type { Hub } from '../../src/hub/hub.js';
import type { Provider } from '../../src/hub/types.js';
import type { WatcherViews } from '../../src/policy/view.js';
import type { Store } from '../../src/store/store.js';
import { GatewayAddressing } from './address.js';
import { AuthorizationStore, ComponentConnection, DISCO_INFO, type AuthorizationRecord, type EntityFactory } from './component.js';
import { XmppFrontend } from './frontend.js';
import { XmppProvider } from './provider.js';
import { RosterManager, type ClientFactory, type LinkedAccount, type RosterLists } from './roster.js';
import { el, errorReply, readPresenceStanza, type XNode } from './wire.js';
import { XmppMessaging } from './im.js';
import type { GatewayMessage } from '../../src/im/relay.js';
import type { ImBridge, ImOutcome } from '../../src/im/types.js';

const domain = z.string().min(1).toLowerCase().regex(/^[a-z0-9.-]+$/, 'expected a domain name');

export const XmppGatewayConfigSchema = z
  .object({
    // Whether the gateway runs at all.
    enabled: z.boolean().default(false),
    // The XMPP server's component port (XEP-0114), "xmpp://host:port" (Prosody: component_ports, 5347).
    service: z.string().regex(/^xmpp:\/\/[^\s/]+:\d{1,5}$/, 'expected "xmpp://<host>:<port>"').default('xmpp://127.0.0.1:5347'),
    // The component's domain as configured on the XMPP server (`Component "sip.xmpp.test"`): SIP users
    // appear in XMPP as <user>%<sip-domain>@<component_domain>.
    component_domain: domain.default('sip.xmpp.test'),
    // The component secret shared with the XMPP server (XEP-0114 §3 handshake). Never logged.
    secret: z.string().default(''),
    // XMPP domains whose users are bridged (RFC 8048 §8: one trust realm, no open federation). Jabber
    // users of other domains can neither be watched nor watch.
    xmpp_domains: z.array(domain).default([]),
    // The SIP domain under which Jabber users appear: sip:<node><separator><xmpp-domain>@<gateway_domain>.
    // Must not be one of Herald's own [sip] domains.
    gateway_domain: domain.default('xmpp.example.test'),
    // Between node and XMPP domain in the SIP user part ("*" or "%", as Kamailio and OpenSIPS use).
    separator: z.string().min(1).max(3).regex(/^[^@:;\s/]+$/, 'expected a short separator such as "*"').default('*'),
    // Domain pairs: sip:<node>@<sip> is the Jabber user <node>@<xmpp>, e.g. [{ sip = "im.example.test", xmpp = "xmpp.test" }].
    domain_pairs: z.array(z.object({ sip: domain, xmpp: domain }).strict()).default([]),
    // The SIP domain whose users appear in XMPP without "%<domain>" (<user>@<component_domain>); "" for none.
    component_sip_domain: z.string().toLowerCase().default(''),
    // The roster list URI of a SIP user who linked a Jabber account ({user}, {domain} replaced).
    roster_list: z.string().regex(/^[^\s@:]*\{user\}[^\s@:]*@\{domain\}$/, 'expected a pattern like "{user}+roster@{domain}"').default('{user}+roster@{domain}'),
    // The XMPP server's client port for roster mode (accounts may name their own).
    c2s_service: z.string().regex(/^xmpps?:\/\/[^\s/]+:\d{1,5}$/, 'expected "xmpp://<host>:<port>"').default('xmpp://127.0.0.1:5222'),
    // Reconnect backoff of the component connection, seconds: first delay, doubling up to the maximum.
    reconnect_initial: z.number().min(0.05).max(3600).default(1),
    reconnect_max: z.number().min(0.05).max(86400).default(60),
    // Least seconds between two subscribe/probe stanzas for one (SIP watcher, Jabber contact), RFC 8048 §8.
    min_request_interval: z.number().min(0).max(86400).default(30),
  })
  .strict();

export type XmppGatewayConfig = z.infer<typeof XmppGatewayConfigSchema>;

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
  const provider = new XmppProvider({ addressing, sink: conn, auths, log, minRequestIntervalMs: cfg.min_request_interval * 1000, feed: roster });
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
  });

  function route(n: XNode): void {
    const type = n.attrs['type'];
    if (n.name === 'presence') {
      const p = readPresenceStanza(n);
      if (!p) return;
      if (!frontend.handle(p, n)) provider.handle(p);
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
