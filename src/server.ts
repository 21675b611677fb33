// Wiring: config → store, SIP stack, hub, providers, front ends. The only place that knows them all.
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import { parseListen } from './config/schema.js';
import { CT } from './formats/content-types.js';
import { Hub } from './hub/hub.js';
import { Notifier } from './events/notifier.js';
import type { SubscriptionRecord } from './events/subscription.js';
import { PUBLICATIONS, PresenceAgent, type PublicationRecord } from './presence/pa.js';
import { PresencePackage } from './presence/presence-package.js';
import { WinfoPackage } from './presence/winfo-package.js';
import { WATCHERS, WatcherRegistry, type WatcherRecord } from './presence/watchers.js';
import { handlePublish, type PublishOptions } from './presence/publish-handler.js';
import type { Authorizer } from './policy/authorizer.js';
import { WatcherViews } from './policy/view.js';
import { Dispatcher } from './sip/dispatch.js';
import type { HeaderList } from './sip/message.js';
import { SipStack } from './sip/stack.js';
import { Store } from './store/store.js';
import { aorOf, canonicalSipUri } from './formats/uri.js';
import { UserDirectory, type UserRecord } from './auth/users.js';
import { NonceManager, ReplayGuard, type NonceCounts } from './auth/digest.js';
import { SipAuthenticator } from './auth/sip-auth.js';
import { isTrustedAddress } from './auth/trust.js';
import { AuthThrottle, logAuthFailure } from './auth/throttle.js';
import type { ServerTx } from './sip/stack.js';
import { nonceSecret } from './auth/secret.js';
import { RulesAuthorizer, sphereOf } from './policy/rules-authorizer.js';
import { XcapDocuments, type StoredXcapDoc } from './xcap/documents.js';
import { XcapServer } from './xcap/server.js';
import { XcapClient } from './xcap/client.js';
import { embeddedRulesSource, remoteRulesSource } from './xcap/rules-source.js';
import { XcapListSource, combinedListSource, memberListSource, type ListSource } from './rls/list-source.js';
import { createXmppGateway, type XmppGateway } from '../gateways/xmpp/index.js';
import { createSipGateway } from '../gateways/sip/index.js';
import { createRegSource } from '../gateways/sip/reginfo.js';
import { HeraldMetrics } from './admin/metrics.js';
import { AdminServer } from './admin/server.js';
import { AdminAuth, ensureToken } from './admin/auth.js';
import { bindError, checkEnvironment, listenKeyOf } from './config/check.js';
import { VERSION } from './version.js';
import { FreeMemoryReturner, glibcAllocator } from './util/free-memory.js';
import { OldSpaceCompactor } from './util/heap-compaction.js';
import { ResourceListServer } from './rls/rls.js';
import { MessageRelay } from './im/relay.js';
import type { ImSender } from './im/types.js';
import { ImRulesAuthorizer } from './im/rules-authorizer.js';
import { openCluster, shareState, type Cluster } from './cluster/cluster.js';
import type { ResourceFeed } from './cluster/feed.js';
import { openOwnership } from './cluster/ownership.js';
import { holdSingleton } from './cluster/singleton.js';
import { notifierOwnership, serveNotifierDialogs } from './cluster/dialogs.js';
import { xmppClusterLink } from './cluster/xmpp.js';
import { serveUpstreamDialogs, upstreamLease } from './cluster/upstream.js';
import { isStoreUnavailable } from './store/unavailable.js';
import { sharedStore } from './store/redis.js';
import { SharedNonceCounts, sharedNonceSecret } from './cluster/shared-auth.js';

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
  readonly watchers: WatcherRegistry;
  readonly rls: ResourceListServer;
  readonly metrics: HeraldMetrics;
  readonly admin: AdminServer | undefined;
  /** This node's membership of a cluster (cluster.redis set); undefined for a single node. */
  readonly cluster: Cluster | undefined;
  /** Resource changes between the nodes (cluster only). */
  readonly feed: ResourceFeed | undefined;
  /** Listening addresses as "proto:addr:port". */
  readonly addresses: string[];
  /**
   * SIGHUP: applies what can change while running (log.level; rules read again from an external XCAP
   * server; users need nothing, they are read from the store at each request) and returns the
   * top-level sections that differ from the running configuration and wait for a restart.
   */
  reload(next: Config): string[];
  stop(): Promise<void>;
}

export interface HeraldOptions {
  log: Logger;
  authorizer?: Authorizer;
}

export async function startHerald(config: Config, opts: HeraldOptions): Promise<Herald> {
  const log = opts.log;
  // What the machine must offer (addresses, files, the store's folder): a mistake is one line naming the key.
  await checkEnvironment(config);
  // cluster.redis empty (the default): nothing below touches Redis, the store is [store] url.
  const cluster = config.cluster.redis ? await openCluster(config.cluster, log) : undefined;
  const store = cluster ? sharedStore(cluster.link, log) : Store.open(config.store.url, log);
  // Who owns each dialog (heartbeat, leases, takeover); nothing of it on a single node.
  const ownership = cluster ? openOwnership(cluster, log) : undefined;
  const stack = new SipStack({
    sipTrace: config.log.sip_trace,
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
    overload: { maxEventLoopDelayMs: config.limits.max_event_loop_delay, maxPendingRequests: config.limits.max_pending_requests, retryAfterSeconds: config.limits.retry_after },
    maxConnections: config.limits.max_connections,
    idleTimeoutMs: config.limits.connection_idle_timeout * 1000,
    maxRetainedResponseBytes: config.limits.max_retained_response_bytes,
    maxRetainedBytes: config.limits.max_retained_bytes,
    log,
  });
  const users = new UserDirectory(store.collection<UserRecord>('user'));
  const replay = new ReplayGuard(config.auth.replay_nonces, config.auth.replay_nonces_per_identity);
  // A cluster's nodes share the nonce secret and the nonce counts (src/cluster/shared-auth.ts).
  const secret = cluster ? await sharedNonceSecret(cluster.link) : await nonceSecret(store);
  const sharedCounts = (local: ReplayGuard): NonceCounts => (cluster ? new SharedNonceCounts(cluster.link, local) : local);
  // One throttle for SIP and XCAP digest: a guesser is the same whichever door it knocks on.
  const throttle = new AuthThrottle({
    maxPerSource: config.auth.throttle_source_failures,
    maxPerIdentity: config.auth.throttle_identity_failures,
    windowMs: config.auth.throttle_window * 1000,
    lockoutMs: config.auth.throttle_lockout * 1000,
    maxTracked: 100_000,
  });
  const auth = new SipAuthenticator({
    enabled: config.auth.enabled,
    domains: config.sip.domains,
    trustedPeers: config.auth.trusted_peers,
    trustedTlsNames: config.auth.trusted_tls_names,
    users,
    nonces: new NonceManager(secret, config.auth.nonce_lifetime * 1000),
    replay: sharedCounts(replay),
    throttle,
    algorithms: config.auth.algorithms,
    challenge: config.auth.challenge,
    log,
    onFailure: (reason) => metrics.authFailure('sip', reason),
  });
  const identifySender = async (tx: ServerTx): Promise<ImSender | undefined> => {
    const r = await auth.identify(tx, common());
    return r.kind === 'answered' ? undefined : { uri: r.identity.uri, anonymous: r.identity.anonymous };
  };
  const identify = async (tx: ServerTx): Promise<string | undefined> => (await identifySender(tx))?.uri;
  // XCAP documents are loaded before anything is restored: restored subscriptions are decided by them.
  const xcapDocuments = await XcapDocuments.open({
    collection: store.collection<StoredXcapDoc>('xcap'),
    log,
    maxDocumentBytes: config.xcap.max_document_bytes,
  });
  let remoteRules: ReturnType<typeof remoteRulesSource> | undefined;
  let remoteImRules: ReturnType<typeof remoteRulesSource> | undefined;
  let xcapClient: XcapClient | undefined;
  if (config.xcap.external_url) {
    xcapClient = new XcapClient({
      baseUrl: config.xcap.external_url,
      ...(config.xcap.external_username ? { username: config.xcap.external_username, password: config.xcap.external_password } : {}),
      timeoutMs: config.xcap.timeout * 1000,
      log,
    });
    remoteRules = remoteRulesSource(xcapClient, config.xcap.poll_interval * 1000);
    remoteImRules = remoteRulesSource(xcapClient, config.xcap.poll_interval * 1000, 'im-rules');
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
  // Grouped by presentity on a shared store: composition reads every node's publications of one presentity.
  const pa = new PresenceAgent(config.sip.domains, store.collection<PublicationRecord>(PUBLICATIONS, { groupBy: 'presentity' }), log, reg);
  hub.register(pa);
  // The XMPP gateway before any provider for remote SIP domains, which would claim its addresses.
  const watchers = new WatcherRegistry(store.collection<WatcherRecord>(WATCHERS, { groupBy: 'resource' }), config.presence.winfo_history * 1000);
  // In a cluster: publications, watcher lists and XCAP documents are the other nodes' too.
  const feed = cluster ? await shareState(cluster, { pa, watchers, documents: xcapDocuments }, log) : undefined;
  // What each watcher may see, for every front end (SIP, lists, Jabber): one view, reported to winfo.
  const views = new WatcherViews(authorizer, watchers, (uri) => pa.handles(uri));
  let xmpp: XmppGateway | undefined;
  if (config.gateway.xmpp.enabled) {
    xmpp = createXmppGateway({
      hub, views, store, log, localDomains: config.sip.domains, config: config.gateway.xmpp,
      ...(cluster ? { cluster: xmppClusterLink(cluster.bus, cluster.link, log) } : {}),
      // The relay is built below; messages arrive only once the gateway has started, after it.
      ...(config.im.enabled ? { deliverMessage: (m) => relay!.fromGateway(m) } : {}),
    });
    hub.register(xmpp.provider);
  }
  // Remote SIP domains last: the presence B2BUA claims every resource no other provider has.
  const sipGateway = gw.enabled ? createSipGateway({ stack, store, log, localDomains: config.sip.domains, config: gw, ...(ownership ? { lease: upstreamLease(ownership.leases) } : {}) }) : undefined;
  if (sipGateway) hub.register(sipGateway.provider);

  // Every answer carries these; called only once requests flow, after both are built (the methods
  // and packages are all registered by then, so the list is built once: it is read per answer).
  let commonList: HeaderList | undefined;
  const common = (): HeaderList =>
    (commonList ??= [
      ['Allow', dispatcher.methods.join(', ')],
      ['Allow-Events', n.events.join(', ')],
      // What Herald accepts in request bodies (PUBLISH); NOTIFY formats are negotiated per SUBSCRIBE.
      ['Accept', CT.PIDF],
      ['Supported', 'eventlist'],
    ]);
  // After a storm, free memory goes back: glibc's free pages (malloc_trim) and V8's half-empty old-space
  // pages (a compacting full GC); both looked at every 10 s by the sweeper below.
  const freeMemory = await freeMemoryReturner(config.limits.max_free_heap_bytes, log);
  const compactor = new OldSpaceCompactor(config.limits.max_free_heap_bytes);
  const metrics: HeraldMetrics = new HeraldMetrics({
    freeMemoryReturned: () => freeMemory?.returnedBytes ?? 0,
    heapCompactions: () => compactor.requests,
    hub: () => hub.stats(),
    subscriptions: (): number => n.size,
    publications: () => pa.publicationCount,
    listSubscriptions: (): number => rls.subscriptions().length,
    upstreamPhases: () => (sipGateway?.links() ?? []).reduce<Record<string, number>>((acc, l) => ((acc[l.phase] = (acc[l.phase] ?? 0) + 1), acc), {}),
    xmppComponent: () => xmpp?.status().component,
    counters: () => ({ ...stack.counters, notifiesSent: n.notifiesSent, shed: stack.overload.shed }),
    im: () => relay?.counters,
  });
  store.onWrite = (ms) => metrics.storeWritten(ms);
  // The admin page hears of every change through these (it reloads what it shows, coalesced).
  let admin: AdminServer | undefined;
  stack.observer = {
    message: (dir, kind, method, status, protocol) => {
      metrics.stackObserver.message(dir, kind, method, status, protocol);
      admin?.changed();
    },
  };
  const n: Notifier = new Notifier(
    stack,
    store.collection<SubscriptionRecord>('subscription'),
    {
      minExpires: config.presence.subscribe_min_expires,
      defaultExpires: config.presence.subscribe_default_expires,
      maxExpires: config.presence.subscribe_max_expires,
      commonHeaders: common,
      identify,
      observer: metrics.notifyObserver,
      maxPerSource: config.limits.max_subscriptions_per_source,
      unbounded: (address) => isTrustedAddress(address, config.auth.trusted_peers),
      ...(cluster && ownership ? { ownership: notifierOwnership(ownership.leases, cluster.bus) } : {}),
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
    // The shared store away (a cluster's Redis): what could not be made durable is not acknowledged,
    // and the client may try again (RFC 3261 §21.5.1 with Retry-After). The link logs the outage once.
    if (isStoreUnavailable(e)) {
      tx.respond({ status: 500, reason: 'Store Unavailable', headers: [...common(), ['Retry-After', String(config.limits.retry_after)]] });
      return;
    }
    log.error({ err: e, method: tx.request.method, callId: tx.request.callId }, 'handler failed');
    tx.respond({ status: 500, reason: 'Server Internal Error' });
  });
  dispatcher.on('SUBSCRIBE', (tx) => n.handleSubscribe(tx));
  // Built once: handlePublish runs for every PUBLISH.
  const publishOptions: PublishOptions = {
    minExpires: config.presence.publish_min_expires,
    defaultExpires: config.presence.publish_default_expires,
    maxExpires: config.presence.publish_max_expires,
    maxDocumentBytes: config.presence.max_document_bytes,
    maxXmlDepth: config.presence.max_xml_depth,
    commonHeaders: common,
    identify,
    maxPerPresentity: config.limits.max_publications_per_presentity,
    maxPerSource: config.limits.max_publications_per_source,
    unbounded: (address) => isTrustedAddress(address, config.auth.trusted_peers),
    arrived: (presentity) => metrics.published(presentity),
    onForeignPublish: (tx, publisher) => {
      logAuthFailure(log, tx.request.source.address, publisher || undefined, 'foreign-publish');
      metrics.authFailure('sip', 'foreign-publish');
    },
  };
  dispatcher.on('PUBLISH', (tx) => handlePublish(tx, pa, publishOptions));
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
  // Instant messages (RFC 3428) under the recipient's IM rules, relayed to the next hop or the
  // registered contacts, and across the XMPP gateway (RFC 7572).
  const im = config.im;
  const relay = im.enabled
    ? new MessageRelay({
        config: { route: im.route, maxBodyBytes: im.max_body_bytes, rate: im.rate, burst: im.burst, timeout: im.timeout, lookupWait: im.lookup_wait, linger: im.linger },
        domains: config.sip.domains,
        send: (req) => stack.send(req),
        authorizer: new ImRulesAuthorizer(
          remoteImRules ?? embeddedRulesSource(xcapDocuments, 'im-rules'),
          { default: im.default, sphere: (aor) => sphereOf(pa.document(aor)) },
          log,
        ),
        identify: identifySender,
        ...(reg ? { contacts: reg } : {}),
        common,
        log,
      })
    : undefined;
  if (relay) dispatcher.on('MESSAGE', (tx) => relay.handle(tx));
  if (relay && xmpp?.im) relay.addBridge(xmpp.im);
  stack.onRequest = (tx) => dispatcher.dispatch(tx);

  await watchers.restore();
  // Dialogs (notifier, upstream, reg) are restored by a single node only: in a cluster the shared store
  // holds every node's dialogs, and a (re)started process is a new node that owns none of them. A dead
  // node's dialogs are taken over through their leases (src/cluster/lease.ts, nodes.ts: the seam is
  // here, `cluster`), not restored at start.
  if (!cluster) {
    // Upstream dialogs first: the subscriptions restored next claim them again (and keep them in-dialog).
    await sipGateway?.restore();
    await reg?.restore();
  }
  const pubs = await pa.restore();
  // A cluster node restores no notifier dialog by itself either: the survivors take a dead node's over
  // (a whole cluster restarted: the first node up takes them all).
  const subs = cluster ? { restored: 0, expired: 0 } : await n.restore();
  if (cluster && ownership) {
    serveNotifierDialogs(n, ownership.takeover, cluster.bus);
    if (sipGateway) serveUpstreamDialogs(sipGateway, ownership.takeover, ownership.leases, cluster.bus);
    // NOTIFYs that waited for Redis (a CSeq reservation) go out when it is back.
    cluster.link.on('up', () => n.retryOwed());
    await ownership.start();
  }
  try {
    await stack.start();
  } catch (e) {
    const at = listenKeyOf(config, e);
    await stack.stop();
    await store.close();
    await cluster?.close();
    throw bindError(at.key, at.what, e);
  }
  // The XMPP component connection: one node of a cluster holds it (src/cluster/singleton.ts).
  if (xmpp && ownership) await holdSingleton(ownership, 'xmpp', 'component', xmpp, log);
  else await xmpp?.start();
  ownership?.scan();
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
      // The digest realm of global documents (xcap-caps) is the SIP domain, so users' SIP HA1s pass.
      realm: config.sip.domains[0]!,
      nonceLifetimeMs: config.auth.nonce_lifetime * 1000,
      replay: sharedCounts(new ReplayGuard(config.auth.replay_nonces, config.auth.replay_nonces_per_identity)),
      ...(cluster ? { nonceSecret: secret } : {}),
      throttle,
      // The same registry as the admin listener's /metrics, kept here for scrapers configured before it.
      metrics: () => metrics.render(),
      onAuthFailure: (reason) => metrics.authFailure('xcap', reason),
    });
    try {
      await xcap.start();
    } catch (e) {
      await stack.stop();
      await store.close();
      await cluster?.close();
      throw bindError('xcap.listen', config.xcap.listen, e);
    }
  }
  const addresses = stack.listening.map((l) => `${l.transport}:${l.address}:${l.port}`);
  if (xcap) addresses.push(`xcap:${xcap.url}`);
  xcapDocuments.onChange(() => admin?.changed());
  if (config.admin.enabled) {
    const at = config.admin.listen.lastIndexOf(':');
    const token = config.admin.token_file ? ensureToken(config.admin.token_file) : undefined;
    admin = new AdminServer({
      host: config.admin.listen.slice(0, at).replace(/^\[|\]$/g, ''),
      port: Number(config.admin.listen.slice(at + 1)),
      source: { config, pa, notifier: n, watchers, rls, sipGateway, xmpp, users, hub, addresses, lastNotify: (k) => n.lastNotify(k) },
      documents: xcapDocuments,
      metrics,
      auth: new AdminAuth({ token, admins: config.admin.admins, users, realm: config.sip.domains[0]!, nonceLifetimeMs: config.auth.nonce_lifetime * 1000 }),
      metricsPublic: config.admin.metrics_public,
      pageSize: config.admin.page_size,
      version: VERSION,
      log,
    });
    try {
      await admin.start();
    } catch (e) {
      await xcap?.stop();
      await stack.stop();
      await store.close();
      await cluster?.close();
      throw bindError('admin.listen', config.admin.listen, e);
    }
  }
  const sweeper = setInterval(() => {
    const now = Date.now();
    pa.sweep(now);
    n.sweep(now);
    if (now % 10_000 < 1000) {
      const trimmed = freeMemory?.check();
      if (trimmed) log.debug(trimmed, 'free C heap pages given back to the system (malloc_trim)');
      const compaction = compactor.check();
      if (compaction) log.debug({ compaction }, 'V8 old space: full compaction at the next full GC');
    }
    if (now % 60_000 < 1000) {
      replay.sweep(now);
      watchers.sweep(now);
      metrics.sweep(now);
    }
  }, 1000);
  sweeper.unref();
  if (admin) addresses.push(`admin:${admin.url}`);
  log.info({ listen: addresses, domains: config.sip.domains, store: cluster ? config.cluster.redis : config.store.url, publications: pubs, subscriptions: subs }, `Herald listening on ${addresses.join(' ')}`);

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
    watchers,
    rls,
    metrics,
    admin,
    cluster,
    feed,
    addresses,
    reload(next: Config): string[] {
      log.level = next.log.level;
      remoteRules?.refresh();
      const sections = Object.keys(next) as (keyof Config)[];
      return sections.filter((k) => {
        const a = k === 'log' ? { ...config.log, level: '' } : config[k];
        const b = k === 'log' ? { ...next.log, level: '' } : next[k];
        return JSON.stringify(a) !== JSON.stringify(b);
      });
    },
    async stop() {
      clearInterval(sweeper);
      compactor.stop();
      await admin?.stop();
      relay?.stop();
      await n.stop();
      await ownership?.stop();
      await xmpp?.stop();
      await sipGateway?.stop();
      await reg?.stop();
      await xcap?.stop();
      remoteRules?.stop();
      remoteImRules?.stop();
      await xcapClient?.close();
      await stack.stop();
      await store.close();
      await cluster?.close();
    },
  };
}

/** The free-memory returner for limits.max_free_heap_bytes, if it is on and glibc can be reached. */
async function freeMemoryReturner(maxFreeBytes: number, log: Logger): Promise<FreeMemoryReturner | undefined> {
  if (maxFreeBytes <= 0) return undefined;
  const allocator = await glibcAllocator();
  if (typeof allocator !== 'string') return new FreeMemoryReturner(allocator, maxFreeBytes);
  log.info(`limits.max_free_heap_bytes: free C heap memory is not given back to the system: ${allocator}`);
  return undefined;
}
