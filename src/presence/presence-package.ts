// The `presence` event package (RFC 3856) on top of the notifier: a subscription is a watch on the
// hub, its content the presentity's document in the negotiated format and the watcher's view
// (RFC 5025: sub-handling and transformations, decided by the authorizer per watcher).
import type { PidfDocument } from '../formats/pidf.js';
import { closedDocument, serializePidf, withEntity } from '../formats/pidf.js';
import { CT, negotiatePresenceType, type PresenceContentType } from '../formats/content-types.js';
import { renderXpidf } from '../formats/xpidf.js';
import { renderCpimPidf } from '../formats/cpim-pidf.js';
import type { WatcherEvent, WatcherStatus } from '../formats/watcherinfo.js';
import { NoProviderError, type Hub } from '../hub/hub.js';
import type { Authorizer, Decision, SubHandling } from '../policy/authorizer.js';
import { header } from '../sip/message.js';
import type { AdmitContext, Admission, EventPackage, NotifyContent, TerminationReason } from '../events/subscription.js';
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
  /** Re-evaluation hooks of live subscriptions, by presentity (rules changed ⇒ NOTIFY if the view did). */
  private readonly live = new Map<string, Set<() => void>>();

  constructor(
    private readonly hub: Hub,
    private readonly pa: PresenceAgent,
    private readonly authorizer: Authorizer,
    private readonly watchers: WatcherRegistry,
    private readonly opts: PresencePackageOptions,
  ) {
    authorizer.onChange?.((presentity) => {
      for (const reevaluate of this.live.get(presentity) ?? []) reevaluate();
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
    const decide = (sphere?: string): Decision => (local ? this.authorizer.decide(ctx.watcher, ctx.resource, sphere) : UPSTREAM_DECIDES);
    if (local) await this.authorizer.prepare?.(ctx.resource);
    const id = watcherId(ctx.key);
    const first = decide();
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
    let watch;
    try {
      watch = this.hub.watch(ctx.resource, () => ctx.changed(), ctx.watcher);
    } catch (e) {
      if (e instanceof NoProviderError) return { ok: false, status: 404, reason: 'Not Found' };
      throw e;
    }
    const render = renderers[contentType];
    const resource = ctx.resource;
    let status = this.watchers.get(resource, id)?.status ?? statusOf(first.subHandling);
    let closed = false;
    let set = this.live.get(resource);
    if (!set) {
      set = new Set();
      this.live.set(resource, set);
    }
    const reevaluate = () => ctx.changed();
    set.add(reevaluate);
    const noBody = (state: 'pending' | 'terminated'): NotifyContent => ({ state, ...(state === 'terminated' ? { reason: 'rejected' as const } : {}), body: undefined, contentType: undefined, tag: undefined });
    return {
      ok: true,
      contentType,
      binding: {
        content: (): NotifyContent => {
          const snap = watch.current();
          const d = decide(sphereOf(snap?.document));
          const next = statusOf(d.subHandling);
          if (next !== status) {
            // RFC 5025 §3.2.1: a rule change moves pending→active (approved), active→pending, or ends it.
            const event: WatcherEvent = next === 'active' ? 'approved' : next === 'terminated' ? 'rejected' : 'subscribe';
            this.watchers.update(resource, id, ctx.watcher, next, event);
            status = next;
          }
          if (d.subHandling === 'block') return noBody('terminated');
          if (d.subHandling === 'confirm') return noBody('pending');
          // An upstream that authorizes by itself (a remote domain, XMPP): its state is the watcher's.
          const up = snap?.upstream;
          if (up?.state === 'pending') return noBody('pending');
          if (up?.state === 'terminated') return { ...noBody('terminated'), reason: asReason(up.reason) };
          // polite-block (RFC 5025 §3.2.1): looks like an accepted subscription to a user who is offline.
          const polite = d.subHandling === 'polite-block';
          const view = `${contentType}|${polite ? 'polite-block' : d.view}`;
          const shown = (doc: PidfDocument | undefined): PidfDocument => (polite || !doc ? closedDocument(resource) : d.transform(withEntity(doc, resource)));
          if (!snap) return { state: 'active', body: render(shown(undefined)), contentType, tag: undefined };
          const r = snap.render(view, (doc) => render(shown(doc)));
          return { state: 'active', body: r.body, contentType, tag: r.tag };
        },
        close: (reason?: TerminationReason) => {
          if (closed) return;
          closed = true;
          watch.stop();
          set.delete(reevaluate);
          if (set.size === 0) this.live.delete(resource);
          if (reason === undefined) return; // shutdown: the subscription lives on in the store
          // RFC 3857 §4.7: a pending subscription that times out stays visible as "waiting".
          const wasPending = status === 'pending';
          this.watchers.update(resource, id, ctx.watcher, wasPending && reason === 'timeout' ? 'waiting' : 'terminated', endEvent(reason));
        },
      },
    };
  }
}
