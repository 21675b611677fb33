// The `presence` event package (RFC 3856) on top of the notifier: a subscription is a watch on the
// hub, its content the presentity's document in the negotiated format and the watcher's view.
import type { PidfDocument } from '../formats/pidf.js';
import { closedDocument, serializePidf, withEntity } from '../formats/pidf.js';
import { CT, negotiatePresenceType, type PresenceContentType } from '../formats/content-types.js';
import { renderXpidf } from '../formats/xpidf.js';
import { renderCpimPidf } from '../formats/cpim-pidf.js';
import { NoProviderError, type Hub } from '../hub/hub.js';
import type { Authorizer } from '../policy/authorizer.js';
import { header } from '../sip/message.js';
import type { AdmitContext, Admission, EventPackage, NotifyContent } from '../events/subscription.js';
import type { PresenceAgent } from './pa.js';

export interface PresencePackageOptions {
  /** RFC 3856 leaves it open: a never-published local user is shown closed, or refused with 480. */
  unknownPresentity: 'closed' | '480';
}

const renderers: Record<PresenceContentType, (doc: PidfDocument) => string> = {
  [CT.PIDF]: serializePidf,
  [CT.XPIDF]: renderXpidf,
  [CT.CPIM_PIDF]: renderCpimPidf,
};

export class PresencePackage implements EventPackage {
  readonly event = 'presence';

  constructor(
    private readonly hub: Hub,
    private readonly pa: PresenceAgent,
    private readonly authorizer: Authorizer,
    private readonly opts: PresencePackageOptions,
  ) {}

  admit(ctx: AdmitContext): Admission {
    let contentType: PresenceContentType | undefined;
    if (ctx.request) {
      contentType = negotiatePresenceType(header(ctx.request, 'accept'));
      if (!contentType) return { ok: false, status: 406, reason: 'Not Acceptable', headers: [['Accept', Object.keys(renderers).join(', ')]] };
      if (this.opts.unknownPresentity === '480' && this.pa.handles(ctx.resource) && !this.pa.hasPublications(ctx.resource)) {
        return { ok: false, status: 480, reason: 'Temporarily Unavailable' };
      }
    } else {
      contentType = (ctx.contentType as PresenceContentType) in renderers ? (ctx.contentType as PresenceContentType) : CT.PIDF;
    }
    const decision = this.authorizer.decide(ctx.watcher, ctx.resource);
    if (decision.subHandling === 'block' && ctx.request) return { ok: false, status: 403, reason: 'Forbidden' };
    let watch;
    try {
      watch = this.hub.watch(ctx.resource, () => ctx.changed());
    } catch (e) {
      if (e instanceof NoProviderError) return { ok: false, status: 404, reason: 'Not Found' };
      throw e;
    }
    const render = renderers[contentType];
    const resource = ctx.resource;
    let closed = false;
    return {
      ok: true,
      contentType,
      binding: {
        content: (): NotifyContent => {
          const d = this.authorizer.decide(ctx.watcher, resource);
          if (d.subHandling === 'confirm' || d.subHandling === 'block') return { state: 'pending', body: undefined, contentType: undefined, tag: undefined };
          const snap = watch.current();
          const view = `${contentType}|${d.subHandling === 'polite-block' ? 'polite-block' : d.view}`;
          const fallback = () => closedDocument(resource);
          if (!snap) {
            const body = render(fallback());
            return { state: 'active', body, contentType, tag: undefined };
          }
          const r = snap.render(view, (doc) => render(d.subHandling === 'polite-block' || !doc ? fallback() : withEntity(doc, resource)));
          return { state: 'active', body: r.body, contentType, tag: r.tag };
        },
        close: () => {
          if (closed) return;
          closed = true;
          watch.stop();
        },
      },
    };
  }
}
