// The presence B2BUA (ARCHITECTURE.md flow 4): a hub provider for resources in remote SIP domains.
// For each watched remote resource it holds an upstream RFC 6665 / RFC 3856 subscription (through
// src/events/subscriber.ts) and turns every upstream NOTIFY into a state change for the hub.
//
// Identity and sharing (RFC 4662 §7): by default one upstream subscription per (remote resource,
// local watcher), From = the watcher, so the remote domain's own rules decide per watcher; for a peer
// that trusts Herald's domain, one shared subscription per remote resource, From = the gateway's
// identity, fanned out by the hub. The core is reached only through the Provider interface.
import type { Logger } from 'pino';
import { CT, mediaType } from '../../src/formats/content-types.js';
import { parseMultipart, rootPart } from '../../src/formats/multipart.js';
import { parsePidf, type PidfDocument } from '../../src/formats/pidf.js';
import { parseRlmi } from '../../src/formats/rlmi.js';
import type { Provider, ProviderState, ProviderWatch } from '../../src/hub/types.js';
import { aorOf, parseSipUri } from '../../src/formats/uri.js';
import { header } from '../../src/sip/message.js';
import type { ServerTx, SipStack } from '../../src/sip/stack.js';
import type { Store } from '../../src/store/store.js';
import { parseEventHeader } from '../../src/events/subscription.js';
import { Subscriber, type NoticeHandler, type NotifyTx, type SubscribeSpec, type SubscriberRecord, type SubscriptionLease, type SubscriptionNotice } from '../../src/events/subscriber.js';
import type { SipGatewayConfig, SipPeerConfig } from './config.js';
import { answerChallenge } from './digest-client.js';

export { SipGatewayConfigSchema, type SipGatewayConfig } from './config.js';

export interface SipGatewayDeps {
  stack: SipStack;
  store: Store;
  log: Logger;
  /** Herald's own domains: never routed here. */
  localDomains: readonly string[];
  config: SipGatewayConfig;
  /** A cluster's leases on the upstream subscriptions (src/cluster/upstream.ts); undefined on a single node. */
  lease?: SubscriptionLease;
}

export interface SipGatewayStats {
  /** Upstream subscriptions held (subscribing, established or backing off). */
  upstreamSubscriptions: number;
  /** Of those, with a dialog at the remote notifier right now. */
  established: number;
  /** Local watches (hub entries) served. */
  watches: number;
}

export interface SipGateway {
  provider: Provider;
  /** Takes NOTIFYs of upstream dialogs (200) and stray presence NOTIFYs (481); false: not ours. */
  handleNotify(tx: ServerTx): boolean;
  /** Loads persisted upstream dialogs; call before the notifier restores its subscriptions. */
  restore(): Promise<void>;
  /** A NOTIFY for this node's upstream dialogs only (one another node of a cluster passed on); false: none matches. */
  handleNotifyHere(tx: NotifyTx): boolean;
  /** The stored dialog of an upstream subscription (in a cluster: any node's). */
  stored(id: string): Promise<SubscriberRecord | undefined>;
  /**
   * In a cluster: a presence NOTIFY in no dialog of this node goes here, with the ids of the
   * subscriptions it may belong to (its dialog may be another node's); unset: 481 at once.
   */
  strayNotify: ((tx: ServerTx, ids: string[]) => void) | undefined;
  /** A cluster's takeover: a dead node's upstream subscription is this node's now; parked as after a restart. */
  adopt(id: string): Promise<void>;
  /** After a lost lease: forgets the upstream subscriptions another node owns now. */
  reconcile(stillOwned: (id: string) => boolean): void;
  stop(): Promise<void>;
  stats(): SipGatewayStats;
  /** The upstream dialogs, per remote resource (the admin API). */
  links(): { id: string; resource: string; from: string; phase: string; established: boolean; expiresAt: number; watchers: number }[];
}

interface Upstream {
  /** The subscriber's id: "presence|<resource>\n<identity>". */
  id: string;
  resource: string;
  listeners: Set<(s: ProviderState) => void>;
  last: ProviderState | undefined;
  /** A restored dialog not yet claimed by a watch: unsubscribed when the grace period ends. */
  parked: NodeJS.Timeout | undefined;
  /** The upstream ended for good (refused or terminated with a final reason). */
  over: boolean;
}

const ACCEPT = [CT.PIDF, CT.MULTIPART_RELATED, CT.RLMI] as const;
const PRESENCE = 'presence';

export function createSipGateway(deps: SipGatewayDeps): SipGateway {
  const { stack, store, log, config } = deps;
  const local = new Set(deps.localDomains.map((d) => d.toLowerCase()));
  const peers = new Map<string, SipPeerConfig>(config.peers.map((p) => [p.domain, p]));
  const upstreams = new Map<string, Upstream>();
  const subscriber = new Subscriber(
    stack,
    store.collection<SubscriberRecord>('gateway-sip'),
    {
      refreshFraction: config.refresh_fraction,
      minRetryMs: config.min_retry * 1000,
      maxRetryMs: config.max_retry * 1000,
      authorize: (peer, res, method, uri) => {
        const p = peers.get(peer);
        if (!p || !p.username) return undefined;
        return answerChallenge(res, { username: p.username, password: p.password }, method, uri);
      },
      headers: [['Allow-Events', PRESENCE]],
      ...(deps.lease ? { lease: deps.lease } : {}),
    },
    log,
  );

  const domainOf = (resource: string): string | undefined => parseSipUri(resource)?.host;

  function refusal(resource: string): { status: number; reason: string; rlmiReason: string } | undefined {
    const d = domainOf(resource);
    if (!d) return { status: 404, reason: 'Not Found', rlmiReason: 'noresource' };
    if (config.policy === 'peers' && !peers.has(d)) return { status: 403, reason: 'Forbidden', rlmiReason: 'rejected' };
    return undefined;
  }

  function specFor(resource: string, identity: string | undefined, id: string): SubscribeSpec {
    const d = domainOf(resource)!;
    const proxy = peers.get(d)?.outbound_proxy;
    return {
      id,
      target: resource,
      from: identity ?? config.identity,
      event: PRESENCE,
      accept: ACCEPT,
      expires: config.expires,
      // The remote resource may be a list at a remote RLS (RFC 4662 §4.1).
      eventlist: true,
      ...(proxy ? { proxy } : {}),
      peer: d,
    };
  }

  function emit(u: Upstream, s: ProviderState): void {
    u.last = s;
    for (const l of u.listeners) l(s);
  }

  /** A NOTIFY body as a PIDF document: PIDF directly, or the resource's part of an RLMI multipart. */
  function documentOf(u: Upstream, body: string, contentType: string | undefined): { doc: PidfDocument | undefined; instance?: ProviderState['upstream'] } {
    const mt = mediaType(contentType);
    if (mt === CT.PIDF || mt === undefined) return { doc: parsePidf(body) };
    if (mt === CT.MULTIPART_RELATED) {
      const m = parseMultipart(contentType!, body);
      const root = rootPart(m);
      if (!root || mediaType(root.contentType) !== CT.RLMI) throw new Error('multipart body without an RLMI root');
      const list = parseRlmi(root.body);
      const want = aorOf(u.resource);
      // The resource itself if the RLMI names it, else the first member with an instance (RFC 4662 §5).
      const res = list.resources.find((r) => aorOf(r.uri) === want) ?? list.resources.find((r) => r.instances.length > 0);
      const inst = res?.instances.find((i) => i.state === 'active') ?? res?.instances[0];
      if (!inst) return { doc: undefined };
      if (inst.state !== 'active') return { doc: undefined, instance: { state: inst.state, ...(inst.reason ? { reason: inst.reason } : {}) } };
      const part = m.parts.find((p) => p.contentId === inst.cid);
      if (!part || mediaType(part.contentType) !== CT.PIDF) return { doc: undefined };
      return { doc: parsePidf(part.body) };
    }
    throw new Error(`unsupported body type ${mt}`);
  }

  function onNotice(u: Upstream, n: SubscriptionNotice): void {
    if (n.kind === 'terminated') {
      u.over = true;
      // 403/404/489/603 or a final reason: the watchers' subscriptions end with it (PresencePackage).
      emit(u, { document: undefined, exists: n.reason !== 'noresource', upstream: { state: 'terminated', reason: n.reason } });
      return;
    }
    if (n.kind === 'stale') {
      // Lost upstream whose last state has run out: unknown, shown as nothing published.
      emit(u, { document: undefined, upstream: { state: 'active' } });
      return;
    }
    if (n.state === 'pending') {
      // The remote domain has not decided yet (RFC 3856 §6.6): pending to the watchers, no body.
      emit(u, { document: undefined, upstream: { state: 'pending' } });
      return;
    }
    let doc = u.last?.upstream?.state === 'active' ? u.last.document : undefined;
    let instance: ProviderState['upstream'];
    if (n.body !== undefined && n.body.trim() !== '') {
      try {
        const r = documentOf(u, n.body, n.contentType);
        doc = r.doc;
        instance = r.instance;
      } catch (e) {
        log.warn({ err: (e as Error).message, resource: u.resource }, 'upstream NOTIFY body not understood; state unchanged');
        return;
      }
    }
    emit(u, { document: doc, upstream: instance ?? { state: 'active' } });
  }

  function release(u: Upstream): void {
    if (u.parked) clearTimeout(u.parked);
    u.parked = undefined;
    if (upstreams.get(u.id) === u) upstreams.delete(u.id);
    const h = subscriber.get(u.id);
    if (h) void h.stop();
  }

  /**
   * A stored upstream dialog taken up again (a restart, or a cluster's takeover): held, refreshed
   * in-dialog, until a watch claims it; unsubscribed when none has by the end of the grace period.
   * Undefined: the gateway no longer subscribes to it.
   */
  function park(spec: SubscribeSpec): NoticeHandler | undefined {
    if (!spec.id.startsWith(`${PRESENCE}|`) || !config.enabled || refusal(spec.target) || !provider.handles(spec.target)) return undefined;
    const u: Upstream = { id: spec.id, resource: spec.target, listeners: new Set(), last: undefined, parked: undefined, over: false };
    upstreams.set(spec.id, u);
    u.parked = setTimeout(() => {
      u.parked = undefined;
      if (u.listeners.size === 0) release(u);
    }, config.restore_grace * 1000);
    u.parked.unref?.();
    return (n) => onNotice(u, n);
  }

  const provider: Provider = {
    name: 'sip-gateway',
    handles(resource: string): boolean {
      if (!config.enabled) return false;
      const u = parseSipUri(resource);
      return !!u && (u.scheme === 'sip' || u.scheme === 'sips') && !!u.user && !local.has(u.host);
    },
    upstreamIdentity(resource: string, watcher: string): string | undefined {
      const d = domainOf(resource);
      return d && peers.get(d)?.trusts_us ? undefined : watcher;
    },
    refuse(resource: string): { status: number; reason: string; rlmiReason: string } | undefined {
      return refusal(resource);
    },
    watch(resource: string, update: (state: ProviderState) => void, watcher?: string): ProviderWatch {
      const no = refusal(resource);
      if (no) {
        // A list member (the RLS watches without asking refuse()): a terminated instance.
        update({ document: undefined, upstream: { state: 'terminated', reason: no.rlmiReason } });
        return { stop: () => undefined };
      }
      const id = `${PRESENCE}|${resource}\n${watcher ?? ''}`;
      let u = upstreams.get(id);
      if (!u) {
        const fresh: Upstream = { id, resource, listeners: new Set(), last: undefined, parked: undefined, over: false };
        u = fresh;
        upstreams.set(id, fresh);
        subscriber.subscribe(specFor(resource, watcher, id), (n) => onNotice(fresh, n));
      } else if (u.parked) {
        // A dialog restored from the store: keep it (refreshed in-dialog) rather than open a new one.
        clearTimeout(u.parked);
        u.parked = undefined;
      }
      const entry = u;
      entry.listeners.add(update);
      if (entry.last) update(entry.last);
      return {
        stop: () => {
          if (!entry.listeners.delete(update) || entry.listeners.size > 0) return;
          // The last local watcher left: unsubscribe upstream (Expires: 0).
          release(entry);
        },
      };
    },
  };

  const gateway: SipGateway = {
    provider,
    strayNotify: undefined,
    handleNotify(tx: ServerTx): boolean {
      if (subscriber.handleNotify(tx)) return true;
      const ev = parseEventHeader(header(tx.request, 'event'));
      if (tx.request.method !== 'NOTIFY' || ev?.event !== PRESENCE) return false;
      if (gateway.strayNotify) {
        // The notifier's From is the remote resource, its To our From: the watcher, or the gateway's
        // identity for a shared subscription (the id's two forms, see watch()).
        const resource = tx.request.from.uri;
        gateway.strayNotify(tx, [`${PRESENCE}|${resource}\n${tx.request.to.uri}`, `${PRESENCE}|${resource}\n`]);
        return true;
      }
      // RFC 6665 §4.1.2.4: a NOTIFY matching no subscription is refused, which ends it at the notifier.
      tx.respond({ status: 481, reason: 'Subscription Does Not Exist' });
      return true;
    },
    handleNotifyHere: (tx) => subscriber.handleNotify(tx),
    stored: (id) => subscriber.stored(id),
    async restore(): Promise<void> {
      const r = await subscriber.restore(park);
      log.info(r, 'SIP gateway: upstream subscriptions restored');
    },
    async adopt(id: string): Promise<void> {
      await subscriber.adopt(id, park);
    },
    reconcile(stillOwned: (id: string) => boolean): void {
      subscriber.reconcile(stillOwned);
    },
    async stop(): Promise<void> {
      for (const u of upstreams.values()) if (u.parked) clearTimeout(u.parked);
      await subscriber.stop();
    },
    links() {
      return subscriber.dialogs().map(({ rec, phase }) => ({
        id: rec.spec.id,
        resource: rec.spec.target,
        from: rec.spec.from,
        phase,
        established: rec.established,
        expiresAt: rec.expiresAt,
        watchers: [...upstreams.values()].find((u) => u.id === rec.spec.id)?.listeners.size ?? 0,
      }));
    },
    stats(): SipGatewayStats {
      let watches = 0;
      for (const u of upstreams.values()) if (u.listeners.size > 0) watches++;
      return { upstreamSubscriptions: subscriber.size, established: subscriber.establishedCount, watches };
    },
  };
  return gateway;
}
