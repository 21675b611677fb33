// The `presence.winfo` event package (RFC 3857, documents RFC 3858): a presentity watches who watches
// it. Only the presentity itself may subscribe (RFC 3857 §5: the default authorization policy). The
// first NOTIFY and every one after a refresh carry full state; changes in between carry partial state
// with only the watchers that changed, with versions 0, 1, 2… that survive a restart.
import { CT } from '../formats/content-types.js';
import { renderWatcherinfo, type WatcherEntry } from '../formats/watcherinfo.js';
import { header } from '../sip/message.js';
import { heldSubscription, type AdmitContext, type Admission, type Binding, type EventPackage, type HeldSubscription, type NotifyContent } from '../events/subscription.js';
import type { WatcherRecord, WatcherRegistry } from './watchers.js';

function acceptsWatcherinfo(accept: string | undefined): boolean {
  if (accept === undefined) return true; // RFC 3857 §3.3: watcherinfo is the default
  return accept.split(',').some((a) => {
    const t = a.split(';')[0]!.trim().toLowerCase();
    return t === CT.WATCHERINFO || t === '*/*' || t === 'application/*';
  });
}

const entry = (r: WatcherRecord): WatcherEntry => ({ id: r.id, uri: r.uri, status: r.status, event: r.event, durationSubscribed: Math.max(0, Math.round((r.updatedAt - r.since) / 1000)) });

export class WinfoPackage implements EventPackage {
  readonly event = 'presence.winfo';

  constructor(
    private readonly watchers: WatcherRegistry,
    private readonly isLocal: (resource: string) => boolean,
  ) {}

  admit(ctx: AdmitContext): Admission {
    if (!this.isLocal(ctx.resource)) return { ok: false, status: 404, reason: 'Not Found' };
    if (ctx.watcher !== ctx.resource) return { ok: false, status: 403, reason: 'Forbidden' };
    if (ctx.request && !acceptsWatcherinfo(header(ctx.request, 'accept'))) return { ok: false, status: 406, reason: 'Not Acceptable', headers: [['Accept', CT.WATCHERINFO]] };
    return { ok: true, contentType: CT.WATCHERINFO, binding: this.bind(heldSubscription(ctx)) };
  }

  /**
   * The binding keeps the subscription only (not the AdmitContext and its SUBSCRIBE: the closures
   * below are made here, where the request is not in scope).
   */
  private bind(sub: HeldSubscription): Binding {
    let full = true;
    const changed = new Map<string, WatcherRecord>();
    const unfollow = this.watchers.follow(sub.resource, (recs) => {
      for (const r of recs) changed.set(r.id, r);
      sub.changed();
    });
    return {
      content: (): NotifyContent => {
        const recs = full ? this.watchers.list(sub.resource) : [...changed.values()];
        const state = full ? 'full' : 'partial';
        full = false;
        changed.clear();
        const body = renderWatcherinfo(sub.nextVersion(), state, [{ resource: sub.resource, package: 'presence', watchers: recs.map(entry) }]);
        return { state: 'active', body, contentType: CT.WATCHERINFO, tag: undefined };
      },
      refreshed: () => {
        full = true;
      },
      close: () => unfollow(),
    };
  }
}
