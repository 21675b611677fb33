// The `presence` event package (RFC 3856) on top of the notifier: a subscription is a watch on the
// hub, its content the presentity's document in the negotiated format and the watcher's view
// (RFC 5025: sub-handling and transformations, decided by the authorizer per watcher).
import type { PidfDocument } from '../formats/pidf.js';
import { closedDocument, serializePidf, withEntity } from '../formats/pidf.js';
import { CT, negotiatePresenceType, type PresenceContentType } from '../formats/content-types.js';
import { renderXpidf } from '../formats/xpidf.js';
import { renderCpimPidf } from '../formats/cpim-pidf.js';
import type { WatcherEvent, WatcherStatus } from '../formats/watcherinfo.js';
import type { Watch } from '../hub/types.js';
import { NoProviderError, type Hub } from '../hub/hub.js';
import type { Authorizer, Decision, SubHandling } from '../policy/authorizer.js';
import { header } from '../sip/message.js';
import type { AdmitContext, Admission, Binding, EventPackage, NotifyContent, TerminationReason } from '../events/subscription.js';
import type { PresenceAgent } from './pa.js';
import { watcherId, type WatcherRegistry } from './watchers.js';
import { sphereOf } from '../policy/rules-authorizer.js';
import type { ResourceListServer } from '../rls/rls.js';

export interface PresencePackageOptions {
  /** RFC 3856 leaves it open: a never-published local user is shown closed, or refused with 480. */
  unknownPresentity: 'closed' | '480';
  /** Whether a local URI names a user (404 otherwise); absent: every local URI is a presentity. */
  isUser?: (uri: string) => Promise<boolean>;
  /** The resource list server: list URIs are its subscriptions (RFC 4662). */
  rls?: ResourceListServer;
}

const renderers: Record<PresenceContentType, (doc: PidfDocument) => string> = {
  [CT.PIDF]: serializePidf,
  [CT.XPIDF]: renderXpidf,
  [CT.CPIM_PIDF]: renderCpimPidf,
};

/** RFC 3857 §4.4 watcher state for a sub-handling decision. */
function statusOf(h: SubHandling): WatcherStatus {
  return h === 'confirm' ? 'pending' : h === 'block' ? 'terminated' : 'active';
}

const UPSTREAM_DECIDES: Decision = { subHandling: 'allow', view: 'full', transform: (d) => d };

const REASONS: readonly TerminationReason[] = ['deactivated', 'probation', 'rejected', 'timeout', 'giveup', 'noresource', 'invariant'];
/** An upstream's reason as an RFC 6665 §4.1.3 reason (unknown ones: "noresource"). */
function asReason(r: string | undefined): TerminationReason {
  return REASONS.includes(r as TerminationReason) ? (r as TerminationReason) : 'noresource';
}

/** The winfo event that explains how a subscription ended (RFC 3857 §4.4). */
function endEvent(reason: TerminationReason): WatcherEvent {
  return reason === 'invariant' ? 'deactivated' : reason;
}

export class PresencePackage implements EventPackage {
  readonly event = 'presence';
  /** Live subscriptions by presentity, re-evaluated when its rules change (NOTIFY if the view did). */
  private readonly live = new Map<string, Set<PresenceBinding>>();

  constructor(
    private readonly hub: Hub,
    private readonly pa: PresenceAgent,
    private readonly authorizer: Authorizer,
    private readonly watchers: WatcherRegistry,
    private readonly opts: PresencePackageOptions,
  ) {
    authorizer.onChange?.((presentity) => {
      for (const b of this.live.get(presentity) ?? []) b.changed();
    });
  }

  async admit(ctx: AdmitContext): Promise<Admission> {
    let contentType: PresenceContentType | undefined;
    if (ctx.request) {
      contentType = negotiatePresenceType(header(ctx.request, 'accept'));
      if (!contentType) return { ok: false, status: 406, reason: 'Not Acceptable', headers: [['Accept', Object.keys(renderers).join(', ')]] };
    } else {
      contentType = (ctx.contentType as PresenceContentType) in renderers ? (ctx.contentType as PresenceContentType) : CT.PIDF;
    }
    if (this.opts.rls?.isList(ctx.resource)) return this.opts.rls.admit(ctx);
    const provider = this.hub.providerFor(ctx.resource);
    if (!provider) return { ok: false, status: 404, reason: 'Not Found' };
    const local = this.pa.handles(ctx.resource);
    if (ctx.request && local && this.opts.isUser && !(await this.opts.isUser(ctx.resource))) return { ok: false, status: 404, reason: 'Not Found' };
    const refusal = ctx.request ? provider.refuse?.(ctx.resource, ctx.watcher) : undefined;
    if (refusal) return { ok: false, status: refusal.status, reason: refusal.reason };
    // Local presentities are authorized here; remote ones by their own domain (upstream state).
    if (local) await this.authorizer.prepare?.(ctx.resource);
    const id = watcherId(ctx.key);
    const first = this.decide(local, ctx.watcher, ctx.resource, undefined);
    if (ctx.request) {
      if (first.subHandling === 'block') {
        // RFC 5025 §3.2.1: block ⇒ the subscription is rejected; the presentity still sees the attempt.
        this.watchers.update(ctx.resource, id, ctx.watcher, 'terminated', 'rejected');
        return { ok: false, status: 403, reason: 'Forbidden' };
      }
      if (this.opts.unknownPresentity === '480' && this.pa.handles(ctx.resource) && !this.pa.hasPublications(ctx.resource)) {
        return { ok: false, status: 480, reason: 'Temporarily Unavailable' };
      }
      this.watchers.update(ctx.resource, id, ctx.watcher, statusOf(first.subHandling), 'subscribe');
    }
    // The binding keeps only what it needs: not the SUBSCRIBE (nor the AdmitContext holding it), which
    // would otherwise live as long as the subscription.
    const changed = ctx.changed;
    let watch: Watch;
    try {
      watch = this.hub.watch(ctx.resource, changed, ctx.watcher);
    } catch (e) {
      if (e instanceof NoProviderError) return { ok: false, status: 404, reason: 'Not Found' };
      throw e;
    }
    const status = this.watchers.get(ctx.resource, id)?.status ?? statusOf(first.subHandling);
    const binding = new PresenceBinding(this, watch, ctx.resource, ctx.watcher, id, contentType, local, status, changed);
    let set = this.live.get(ctx.resource);
    if (!set) {
      set = new Set();
      this.live.set(ctx.resource, set);
    }
    set.add(binding);
    return { ok: true, contentType, binding };
  }

  /** For bindings: decide for one watcher (remote presentities are decided upstream). */
  decide(local: boolean, watcher: string, resource: string, sphere: string | undefined): Decision {
    return local ? this.authorizer.decide(watcher, resource, sphere) : UPSTREAM_DECIDES;
  }

  /** For bindings: the watcher list behind winfo. */
  report(resource: string, id: string, watcher: string, status: WatcherStatus, event: WatcherEvent): void {
    this.watchers.update(resource, id, watcher, status, event);
  }

  /** For bindings: a closed binding leaves the re-evaluation set. */
  forget(resource: string, b: PresenceBinding): void {
    const set = this.live.get(resource);
    set?.delete(b);
    if (set && set.size === 0) this.live.delete(resource);
  }
}

const noBody = (state: 'pending' | 'terminated'): NotifyContent => ({ state, ...(state === 'terminated' ? { reason: 'rejected' as const } : {}), body: undefined, contentType: undefined, tag: undefined });

/**
 * One presence subscription's view: a class rather than closures, so each subscription costs one
 * small object with flat fields.
 */
class PresenceBinding implements Binding {
  private closed = false;

  constructor(
    private readonly pkg: PresencePackage,
    private readonly watch: Watch,
    private readonly resource: string,
    private readonly watcher: string,
    private readonly id: string,
    private readonly contentType: PresenceContentType,
    private readonly local: boolean,
    private status: WatcherStatus,
    readonly changed: () => void,
  ) {}

  content(): NotifyContent {
    const snap = this.watch.current();
    const d = this.pkg.decide(this.local, this.watcher, this.resource, sphereOf(snap?.document));
    const next = statusOf(d.subHandling);
    if (next !== this.status) {
      // RFC 5025 §3.2.1: a rule change moves pending→active (approved), active→pending, or ends it.
      const event: WatcherEvent = next === 'active' ? 'approved' : next === 'terminated' ? 'rejected' : 'subscribe';
      this.pkg.report(this.resource, this.id, this.watcher, next, event);
      this.status = next;
    }
    if (d.subHandling === 'block') return noBody('terminated');
    if (d.subHandling === 'confirm') return noBody('pending');
    // An upstream that authorizes by itself (a remote domain, XMPP): its state is the watcher's.
    const up = snap?.upstream;
    if (up?.state === 'pending') return noBody('pending');
    if (up?.state === 'terminated') return { ...noBody('terminated'), reason: asReason(up.reason) };
    // polite-block (RFC 5025 §3.2.1): looks like an accepted subscription to a user who is offline.
    const polite = d.subHandling === 'polite-block';
    const view = `${this.contentType}|${polite ? 'polite-block' : d.view}`;
    const resource = this.resource;
    const render = renderers[this.contentType];
    const shown = (doc: PidfDocument | undefined): PidfDocument => (polite || !doc ? closedDocument(resource) : d.transform(withEntity(doc, resource)));
    if (!snap) return { state: 'active', body: render(shown(undefined)), contentType: this.contentType, tag: undefined };
    const r = snap.render(view, (doc) => render(shown(doc)));
    return { state: 'active', body: r.body, bodyBytes: r.bytes, contentType: this.contentType, tag: r.tag };
  }

  close(reason?: TerminationReason): void {
    if (this.closed) return;
    this.closed = true;
    this.watch.stop();
    this.pkg.forget(this.resource, this);
    if (reason === undefined) return; // shutdown: the subscription lives on in the store
    // RFC 3857 §4.7: a pending subscription that times out stays visible as "waiting".
    const wasPending = this.status === 'pending';
    this.pkg.report(this.resource, this.id, this.watcher, wasPending && reason === 'timeout' ? 'waiting' : 'terminated', endEvent(reason));
  }
}
