// Wiring: config → store, SIP stack, hub, providers, front ends. The only place that knows them all.
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import { parseListen } from './config/schema.js';
import { CT } from './formats/content-types.js';
import { Hub } from './hub/hub.js';
import { Notifier } from './events/notifier.js';
import type { SubscriptionRecord } from './events/subscription.js';
import { PresenceAgent, type PublicationRecord } from './presence/pa.js';
import { PresencePackage } from './presence/presence-package.js';
import { WinfoPackage } from './presence/winfo-package.js';
import { WatcherRegistry, type WatcherRecord } from './presence/watchers.js';
import { handlePublish } from './presence/publish-handler.js';
import type { Authorizer } from './policy/authorizer.js';
import { WatcherViews } from './policy/view.js';
import { Dispatcher } from './sip/dispatch.js';
import type { HeaderList } from './sip/message.js';
import { SipStack } from './sip/stack.js';
import { Store } from './store/store.js';
import { aorOf, canonicalSipUri } from './formats/uri.js';
import { UserDirectory, type UserRecord } from './auth/users.js';
import { NonceManager, ReplayGuard } from './auth/digest.js';
import { SipAuthenticator } from './auth/sip-auth.js';
import type { ServerTx } from './sip/stack.js';
import { nonceSecret } from './auth/secret.js';
import { RulesAuthorizer } from './policy/rules-authorizer.js';
import { XcapDocuments, type StoredXcapDoc } from './xcap/documents.js';
import { XcapServer } from './xcap/server.js';
import { XcapClient } from './xcap/client.js';
import { embeddedRulesSource, remoteRulesSource } from './xcap/rules-source.js';
import { XcapListSource, combinedListSource, memberListSource, type ListSource } from './rls/list-source.js';
import { createXmppGateway, type XmppGateway } from '../gateways/xmpp/index.js';
import { createSipGateway } from '../gateways/sip/index.js';
import { createRegSource } from '../gateways/sip/reginfo.js';
import { renderMetrics } from './metrics.js';
import { ResourceListServer } from './rls/rls.js';

export interface Herald {
  readonly config: Config;
  readonly stack: SipStack;
  readonly hub: Hub;
  readonly pa: PresenceAgent;
  readonly notifier: Notifier;
  readonly store: Store;
  readonly users: UserDirectory;
  readonly xcap: XcapServer | undefined;
  readonly xcapDocuments: XcapDocuments;
  readonly xmpp: XmppGateway | undefined;
  readonly sipGateway: ReturnType<typeof createSipGateway> | undefined;
  /** Listening addresses as "proto:addr:port". */
  readonly addresses: string[];
  stop(): Promise<void>;
}

export interface HeraldOptions {
  log: Logger;
  authorizer?: Authorizer;
}

export async function startHerald(config: Config, opts: HeraldOptions): Promise<Herald> {
  const log = opts.log;
  const store = Store.open(config.store.url, log);
  const stack = new SipStack({
    listen: config.sip.listen.map(parseListen),
    tlsCert: config.sip.tls_cert,
    tlsKey: config.sip.tls_key,
    tlsCa: config.sip.tls_ca,
    maxMessageBytes: config.sip.max_message_bytes,
    publicHost: config.sip.public_host,
    dns: {
      servers: config.sip.dns_servers,
      timeoutMs: config.sip.dns_timeout,
      // UDP only when Herald has a UDP socket to send from; TCP and TLS connect out as needed.
      transports: config.sip.listen.some((l) => l.startsWith('udp:')) ? ['UDP', 'TCP', 'TLS'] : ['TCP', 'TLS'],
    },
    log,
  });
  const users = new UserDirectory(store.collection<UserRecord>('user'));
  const replay = new ReplayGuard();
  const auth = new SipAuthenticator({
    enabled: config.auth.enabled,
    domains: config.sip.domains,
    trustedPeers: config.auth.trusted_peers,
    trustedTlsNames: config.auth.trusted_tls_names,
    users,
    nonces: new NonceManager(await nonceSecret(store), config.auth.nonce_lifetime * 1000),
    replay,
    algorithms: config.auth.algorithms,
    log,
  });
  const identify = async (tx: ServerTx): Promise<string | undefined> => {
    const r = await auth.identify(tx, common());
    return r.kind === 'answered' ? undefined : r.identity.uri;
  };
  // XCAP documents are loaded before anything is restored: restored subscriptions are decided by them.
  const xcapDocuments = await XcapDocuments.open({
    collection: store.collection<StoredXcapDoc>('xcap'),
    log,
    maxDocumentBytes: config.xcap.max_document_bytes,
  });
  let remoteRules: ReturnType<typeof remoteRulesSource> | undefined;
  let xcapClient: XcapClient | undefined;
  if (config.xcap.external_url) {
    xcapClient = new XcapClient({
      baseUrl: config.xcap.external_url,
      ...(config.xcap.external_username ? { username: config.xcap.external_username, password: config.xcap.external_password } : {}),
      timeoutMs: config.xcap.timeout * 1000,
      log,
    });
    remoteRules = remoteRulesSource(xcapClient, config.xcap.poll_interval * 1000);
  }
  const authorizer =
    opts.authorizer ??
    new RulesAuthorizer(remoteRules ?? embeddedRulesSource(xcapDocuments), { handling: config.policy.default, allowDomains: config.policy.allow_domains }, log);
  const hub = new Hub();
  const gw = config.gateway.sip;
  // Registration state of local users at the operator's registrar (RFC 3680), for users who publish nothing.
  const reg = gw.reg.enabled
    ? createRegSource({ stack, store, log, config: gw.reg, identity: gw.identity, refreshFraction: gw.refresh_fraction, minRetryMs: gw.min_retry * 1000, maxRetryMs: gw.max_retry * 1000 })
    : undefined;
  const pa = new PresenceAgent(config.sip.domains, store.collection<PublicationRecord>('publication'), log, reg);
  hub.register(pa);
  // The XMPP gateway before any provider for remote SIP domains, which would claim its addresses.
  const watchers = new WatcherRegistry(store.collection<WatcherRecord>('watcher'), config.presence.winfo_history * 1000);
  // What each watcher may see, for every front end (SIP, lists, Jabber): one view, reported to winfo.
  const views = new WatcherViews(authorizer, watchers, (uri) => pa.handles(uri));
  let xmpp: XmppGateway | undefined;
  if (config.gateway.xmpp.enabled) {
    xmpp = createXmppGateway({ hub, views, store, log, localDomains: config.sip.domains, config: config.gateway.xmpp });
    hub.register(xmpp.provider);
  }
  // Remote SIP domains last: the presence B2BUA claims every resource no other provider has.
  const sipGateway = gw.enabled ? createSipGateway({ stack, store, log, localDomains: config.sip.domains, config: gw }) : undefined;
  if (sipGateway) hub.register(sipGateway.provider);

  // Every answer carries these; called only once requests flow, after both are built.
  const common = (): HeaderList => [
    ['Allow', dispatcher.methods.join(', ')],
    ['Allow-Events', n.events.join(', ')],
    // What Herald accepts in request bodies (PUBLISH); NOTIFY formats are negotiated per SUBSCRIBE.
    ['Accept', CT.PIDF],
    ['Supported', 'eventlist'],
  ];
  const n = new Notifier(
    stack,
    store.collection<SubscriptionRecord>('subscription'),
    {
      minExpires: config.presence.subscribe_min_expires,
      defaultExpires: config.presence.subscribe_default_expires,
      maxExpires: config.presence.subscribe_max_expires,
      commonHeaders: common,
      identify,
    },
    log,
  );
  const listSources: ListSource[] = [new XcapListSource({ documents: xcapDocuments, root: config.xcap.root, log, maxMembers: config.rls.max_members })];
  // Roster mode (RFC 6121 rosters of linked Jabber accounts) as resource lists.
  if (xmpp) listSources.push(memberListSource(xmpp.roster));
  const flatServices = new Set(config.rls.flatten_services.map(canonicalSipUri));
  const rls = new ResourceListServer(
    combinedListSource(listSources),
    hub,
    views,
    {
      minIntervalMs: config.rls.min_notify_interval,
      maxNotifyBytes: config.rls.max_notify_bytes,
      domain: config.sip.domains[0]!,
      flatten: (service) => !config.rls.nested_lists || flatServices.has(canonicalSipUri(service)),
    },
    log,
  );
  const presence = new PresencePackage(hub, pa, views, {
    unknownPresentity: config.presence.unknown_presentity,
    // Where Herald itself authenticates everyone (auth on, no trusted proxy in front), it knows its
    // users: a local URI that is no user, no list and has no publication is 404. Behind a trusted
    // proxy the users live elsewhere, and any local URI is a presentity.
    ...(config.auth.enabled && config.auth.trusted_peers.length === 0 && config.auth.trusted_tls_names.length === 0
      ? { isUser: async (uri: string) => pa.hasPublications(uri) || (await users.get(uri)) !== undefined }
      : {}),
  });
  // Event: presence has two front ends. A list URI goes to the RLS (RFC 4662) before anything else,
  // content negotiation included: each front end checks Accept for what it sends.
  n.register({ event: 'presence', admit: (ctx) => (rls.isList(ctx.resource) ? rls.admit(ctx) : presence.admit(ctx)) });
  n.register(new WinfoPackage(watchers, (r) => pa.handles(r)));

  const dispatcher = new Dispatcher(common, (e, tx) => {
    log.error({ err: e, method: tx.request.method, callId: tx.request.callId }, 'handler failed');
    tx.respond({ status: 500, reason: 'Server Internal Error' });
  });
  dispatcher.on('SUBSCRIBE', (tx) => n.handleSubscribe(tx));
  dispatcher.on('PUBLISH', (tx) =>
    handlePublish(tx, pa, {
      minExpires: config.presence.publish_min_expires,
      defaultExpires: config.presence.publish_default_expires,
      maxExpires: config.presence.publish_max_expires,
      maxDocumentBytes: config.presence.max_document_bytes,
      maxXmlDepth: config.presence.max_xml_depth,
      commonHeaders: common,
      identify,
    }),
  );
  // NOTIFY arrives only in dialogs of upstream subscriptions (the SIP gateway, the reg source).
  dispatcher.on('NOTIFY', (tx) => {
    if (sipGateway?.handleNotify(tx) || reg?.handleNotify(tx)) return;
    tx.respond({ status: 481, reason: 'Subscription Does Not Exist', headers: common() });
  });
  dispatcher.on('OPTIONS', (tx) => {
    // Monitors and proxies ping Herald's domains and addresses: 200 with what it supports.
    const host = tx.request.ruri?.host;
    const user = aorOf(tx.request.uri);
    const ours = !host || !user || config.sip.domains.includes(host);
    tx.respond({ status: ours ? 200 : 404, reason: ours ? 'OK' : 'Not Found', headers: common() });
  });
  stack.onRequest = (tx) => dispatcher.dispatch(tx);

  await watchers.restore();
  // Upstream dialogs first: the subscriptions restored next claim them again (and keep them in-dialog).
  await sipGateway?.restore();
  await reg?.restore();
  const pubs = await pa.restore();
  const subs = await n.restore();
  await stack.start();
  await xmpp?.start();
  let xcap: XcapServer | undefined;
  if (config.xcap.enabled) {
    const at = config.xcap.listen.lastIndexOf(':');
    xcap = new XcapServer({
      root: config.xcap.root,
      host: config.xcap.listen.slice(0, at),
      port: Number(config.xcap.listen.slice(at + 1)),
      documents: xcapDocuments,
      users,
      log,
      maxDocumentBytes: config.xcap.max_document_bytes,
      admins: config.xcap.admins,
      nonceLifetimeMs: config.auth.nonce_lifetime * 1000,
      metrics: () => {
        const h = hub.stats();
        const c = stack.counters;
        return renderMetrics({
          hub_resources: { help: 'Resources watched through the hub (one upstream watch each, however many watchers).', type: 'gauge', value: h.resources },
          hub_watchers: { help: 'Watchers behind those watches (subscriptions, list members, Jabber watchers).', type: 'gauge', value: h.watchers },
          subscriptions: { help: 'Subscription dialogs Herald is the notifier of.', type: 'gauge', value: n.size },
          publications: { help: 'Live publications (RFC 3903).', type: 'gauge', value: pa.publicationCount },
          upstream_subscriptions: { help: 'Subscriptions the SIP gateway holds at remote domains.', type: 'gauge', value: sipGateway?.stats().upstreamSubscriptions ?? 0 },
          notify_sent_total: { help: 'NOTIFY requests sent.', type: 'counter', value: n.notifiesSent },
          sip_requests_in_total: { help: 'SIP requests received (retransmissions excluded).', type: 'counter', value: c.requestsIn },
          sip_retransmissions_absorbed_total: { help: 'Retransmitted requests answered from the transaction.', type: 'counter', value: c.retransmissionsAbsorbed },
          sip_malformed_total: { help: 'Malformed SIP messages refused or dropped.', type: 'counter', value: c.malformed },
        });
      },
    });
    await xcap.start();
  }
  const sweeper = setInterval(() => {
    const now = Date.now();
    pa.sweep(now);
    n.sweep(now);
    if (now % 60_000 < 1000) {
      replay.sweep(now);
      watchers.sweep(now);
    }
  }, 1000);
  sweeper.unref();
  const addresses = stack.listening.map((l) => `${l.transport}:${l.address}:${l.port}`);
  if (xcap) addresses.push(`xcap:${xcap.url}`);
  log.info({ listen: addresses, domains: config.sip.domains, store: config.store.url, publications: pubs, subscriptions: subs }, `Herald listening on ${addresses.join(' ')}`);

  return {
    config,
    stack,
    hub,
    pa,
    notifier: n,
    store,
    users,
    xcap,
    xcapDocuments,
    xmpp,
    sipGateway,
    addresses,
    async stop() {
      clearInterval(sweeper);
      await n.stop();
      await xmpp?.stop();
      await sipGateway?.stop();
      await reg?.stop();
      await xcap?.stop();
      remoteRules?.stop();
      await xcapClient?.close();
      await stack.stop();
      await store.close();
    },
  };
}
