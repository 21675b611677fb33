// The `presence` event package (RFC 3856) on top of the notifier: a subscription is a watch on the
// hub, its content the presentity's document in the negotiated format, as the watcher view
// (src/policy/view.ts) says this watcher may see it. List URIs never reach it: the wiring routes
// them to the RLS before any content negotiation (RFC 4662).
import type { PidfDocument } from '../formats/pidf.js';
import { serializePidf } from '../formats/pidf.js';
import { CT, acceptsExactly, negotiatePresenceType, type PresenceContentType } from '../formats/content-types.js';
import { diffPidf, renderPidfFull } from '../formats/pidf-diff.js';
import { renderXpidf } from '../formats/xpidf.js';
import { renderCpimPidf } from '../formats/cpim-pidf.js';
import { renderLpidf } from '../formats/lpidf.js';
import { entityTag, type PresenceSnapshot, type SnapshotListener, type Watched } from '../hub/types.js';
import { NoProviderError, type Hub } from '../hub/hub.js';
import { renderView, WatcherView, type WatcherViews } from '../policy/view.js';
import { header } from '../sip/message.js';
import { heldSubscription, type AdmitContext, type Admission, type Binding, type EventPackage, type HeldSubscription, type NotifyContent, type TerminationReason } from '../events/subscription.js';
import type { PresenceAgent } from './pa.js';
import { watcherId } from './watchers.js';

export interface PresencePackageOptions {
  /** RFC 3856 leaves it open: a never-published local user is shown closed, or refused with 480. */
  unknownPresentity: 'closed' | '480';
  /** Whether a local URI names a user (404 otherwise); absent: every local URI is a presentity. */
  isUser?: (uri: string) => Promise<boolean>;
}

const renderers: Record<PresenceContentType, (doc: PidfDocument) => string> = {
  [CT.PIDF]: serializePidf,
  [CT.XPIDF]: renderXpidf,
  [CT.CPIM_PIDF]: renderCpimPidf,
  [CT.LPIDF]: renderLpidf,
};

const REASONS: readonly TerminationReason[] = ['deactivated', 'probation', 'rejected', 'timeout', 'giveup', 'noresource', 'invariant'];
/** An upstream's reason as an RFC 6665 §4.1.3 reason (unknown ones: "noresource"). */
function asReason(r: string | undefined): TerminationReason {
  return REASONS.includes(r as TerminationReason) ? (r as TerminationReason) : 'noresource';
}

export class PresencePackage implements EventPackage {
  readonly event = 'presence';
  private readonly presentations = new Map<PresenceContentType, Presentation>();

  constructor(
    private readonly hub: Hub,
    private readonly pa: PresenceAgent,
    private readonly views: WatcherViews,
    private readonly opts: PresencePackageOptions,
  ) {
    views.onChange((presentity) => {
      // Its subscriptions are re-evaluated (NOTIFY if the view changed); they are the hub's listeners
      // of the presentity, so no set of its own is kept per presentity.
      for (const l of hub.listenersOf(presentity)) if (l instanceof PresenceBinding) l.changed();
    });
  }

  async admit(ctx: AdmitContext): Promise<Admission> {
    let contentType: PresenceContentType | undefined;
    // RFC 5263 §3: partial notification for a watcher that accepts pidf-diff beside PIDF.
    let partial = false;
    if (ctx.request) {
      const accept = header(ctx.request, 'accept');
      contentType = negotiatePresenceType(accept);
      if (!contentType) return { ok: false, status: 406, reason: 'Not Acceptable', headers: [['Accept', Object.keys(renderers).join(', ')]] };
      partial = contentType === CT.PIDF && acceptsExactly(accept, CT.PIDF_DIFF);
    } else if (ctx.contentType === CT.PIDF_DIFF) {
      contentType = CT.PIDF;
      partial = true;
    } else {
      contentType = (ctx.contentType as PresenceContentType) in renderers ? (ctx.contentType as PresenceContentType) : CT.PIDF;
    }
    const provider = this.hub.providerFor(ctx.resource);
    if (!provider) return { ok: false, status: 404, reason: 'Not Found' };
    const local = this.pa.handles(ctx.resource);
    // In a cluster the presentity may have published at another node a moment ago.
    if (ctx.request && local) await this.pa.fresh(ctx.resource);
    if (ctx.request && local && this.opts.isUser && !(await this.opts.isUser(ctx.resource))) return { ok: false, status: 404, reason: 'Not Found' };
    const refusal = ctx.request ? provider.refuse?.(ctx.resource, ctx.watcher) : undefined;
    if (refusal) return { ok: false, status: refusal.status, reason: refusal.reason };
    // Local presentities are authorized here; remote ones by their own domain (upstream state).
    await this.views.prepare(ctx.resource);
    // The binding keeps only what it needs: not the SUBSCRIBE (nor the AdmitContext holding it), which
    // would otherwise live as long as the subscription; the subscription's handle, not closures. It is
    // the watcher's view, and the hub's listener, itself: one object per subscription.
    const sub = heldSubscription(ctx);
    const how = this.presentation(contentType);
    const binding = partial ? new PartialPresenceBinding(how, sub) : new PresenceBinding(how, sub);
    if (ctx.request) {
      // RFC 5025 §3.2.1: block ⇒ the subscription is rejected; the presentity still sees the attempt.
      if (binding.first() === 'block') {
        binding.arrive();
        return { ok: false, status: 403, reason: 'Forbidden' };
      }
      if (this.opts.unknownPresentity === '480' && local && !this.pa.hasPublications(ctx.resource)) {
        return { ok: false, status: 480, reason: 'Temporarily Unavailable' };
      }
    }
    binding.arrive();
    try {
      binding.watched = this.hub.join(ctx.resource, binding, ctx.watcher);
    } catch (e) {
      if (e instanceof NoProviderError) {
        binding.detach();
        return { ok: false, status: 404, reason: 'Not Found' };
      }
      throw e;
    }
    return { ok: true, contentType: partial ? CT.PIDF_DIFF : contentType, binding };
  }

  /** The one Presentation of each content type (what every binding of that type points to). */
  private presentation(contentType: PresenceContentType): Presentation {
    let p = this.presentations.get(contentType);
    if (p === undefined) this.presentations.set(contentType, (p = { views: this.views, contentType }));
    return p;
  }
}

/** How a binding's subscription is shown: its views and content type, shared by every binding of the type. */
interface Presentation {
  readonly views: WatcherViews;
  readonly contentType: PresenceContentType;
}

const noBody = (state: 'pending' | 'terminated'): NotifyContent => ({ state, ...(state === 'terminated' ? { reason: 'rejected' as const } : {}), body: undefined, contentType: undefined, tag: undefined });

/** The active content of each rendering of a snapshot (dropped with the snapshot). */
const shownContent = new WeakMap<object, NotifyContent>();

/** Before the hub's watch is taken (admission sets it at once), and after it is left. */
const NOT_WATCHED: Watched = { current: () => undefined, leave: () => undefined };

/**
 * One presence subscription: a class rather than closures, so each subscription costs one small
 * object with flat fields: it is the watcher's view (what the watcher may see; this only renders it)
 * and the hub's listener itself.
 */
class PresenceBinding extends WatcherView implements Binding, SnapshotListener {
  watched: Watched = NOT_WATCHED;

  constructor(
    private readonly how: Presentation,
    protected readonly sub: HeldSubscription,
  ) {
    super(how.views, sub.resource, watcherId(sub.key));
  }

  /**
   * Its watcher info id, derived from the subscription's key when asked (when its status changes and
   * when watcher info is rendered), not kept: the registry's table holds it as its key already.
   */
  get id(): string {
    return watcherId(this.sub.key);
  }

  protected get views(): WatcherViews {
    return this.how.views;
  }

  private get contentType(): PresenceContentType {
    return this.how.contentType;
  }

  /** The subscription's own names (no copies of its pointers here). */
  get resource(): string {
    return this.sub.resource;
  }

  get watcher(): string {
    return this.sub.watcher;
  }

  /** The hub's news: the presentity changed. */
  onSnapshot(_snapshot: PresenceSnapshot): void {
    this.sub.changed();
  }

  /** The rules changed (PresencePackage re-evaluates every binding of the presentity). */
  changed(): void {
    this.sub.changed();
  }

  content(): NotifyContent {
    return this.fullContent();
  }

  refreshed(): void {
    // Full state is all this binding ever sends.
  }

  /** The whole document in the negotiated format, as this watcher's view shows it. */
  protected fullContent(): NotifyContent {
    const snap = this.watched.current();
    const v = this.see(snap);
    if (v.state === 'pending') return noBody('pending');
    if (v.state === 'terminated') return v.by === 'rules' ? noBody('terminated') : { ...noBody('terminated'), reason: asReason(v.reason) };
    const r = renderView(snap, v, this.contentType, renderers[this.contentType]);
    // A snapshot's rendering (it has a tag) is one content type and view: its NotifyContent is made
    // once and shared by every watcher shown it, as the body is (the notifier never changes one).
    let c = r.tag !== undefined ? shownContent.get(r) : undefined;
    if (c === undefined) {
      // RFC 5839 §6.1: every body has a tag, a never-published presentity's closed one too.
      c = { state: 'active', body: r.body, ...(r.bytes ? { bodyBytes: r.bytes } : {}), contentType: this.contentType, tag: r.tag ?? entityTag(r.body) };
      if (r.tag !== undefined) shownContent.set(r, c);
    }
    return c;
  }

  /** RFC 5839 §6.1: the tag names the body this watcher is shown (its content type and view). */
  currentTag(): string | undefined {
    const c = this.fullContent();
    return c.state === 'active' ? c.tag : undefined;
  }

  close(reason?: TerminationReason): void {
    if (this.watched === NOT_WATCHED) return;
    this.watched.leave(this);
    this.watched = NOT_WATCHED;
    // Shutdown, or another node holds it now: the subscription lives on (in the store).
    if (reason === undefined) this.detach();
    else this.leave(reason);
  }
}

/**
 * RFC 5263 partial notification, for a watcher that accepts pidf-diff beside PIDF: pidf-full with its
 * version first (and after a refresh), then patches; full state again whenever the patch would not be
 * smaller. Its content() spends versions, so it has synced() (see Binding.synced).
 */
class PartialPresenceBinding extends PresenceBinding {
  /** The document this watcher last got, and whether full state is owed. */
  private last: PidfDocument | undefined;
  private full = true;

  synced(): void {
    const v = this.see(this.watched.current());
    this.last = v.state === 'active' ? v.show(this.watched.current()?.document) : undefined;
    this.full = this.last === undefined;
  }

  override content(): NotifyContent {
    const c = this.fullContent();
    if (c.state !== 'active') return c;
    // The entity-tag names the full state (RFC 5839 §6.4).
    const snap = this.watched.current();
    const v = this.see(snap);
    if (v.state !== 'active') return c;
    const doc = v.show(snap?.document);
    const version = this.sub.nextVersion();
    const patch = !this.full && this.last ? diffPidf(this.last, doc, version) : undefined;
    const whole = patch === undefined || Buffer.byteLength(patch) >= Buffer.byteLength(c.body ?? '') ? renderPidfFull(doc, version) : undefined;
    this.last = doc;
    this.full = false;
    // A new body (pidf-full with its version, or a patch): the view's shared bytes are not its bytes.
    const { bodyBytes: _shared, ...rest } = c;
    return { ...rest, body: whole ?? patch, contentType: CT.PIDF_DIFF };
  }

  override refreshed(): void {
    this.full = true;
  }
}
