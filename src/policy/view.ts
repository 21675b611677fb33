// The watcher view (ARCHITECTURE.md): the one place that turns the presentity's rules' decision,
// the upstream state and the snapshot into what one watcher sees — pending, terminated with a
// reason, polite-block closed, or the transformed document with the key its rendering is memoized
// under — and tells the watcher registry (RFC 3857 watcher info) how the watcher stands. The SIP
// presence package, the RLS (per list member) and the XMPP front end only render and send.
import { closedDocument, withEntity, type PidfDocument } from '../formats/pidf.js';
import type { SubHandling } from '../formats/pres-rules.js';
import type { WatcherEvent, WatcherStatus } from '../formats/watcherinfo.js';
import type { PresenceSnapshot } from '../hub/types.js';
import type { Authorizer, Decision } from './authorizer.js';
import { sphereOf } from './rules-authorizer.js';
import { EPOCH, sinceEpoch } from '../util/epoch.js';

/** A watcher as watcher info lists it (RFC 3858 §4): the registry's entry (src/presence/watchers.ts). */
export interface WatcherStanding {
  readonly resource: string;
  readonly package: string;
  readonly id: string;
  readonly uri: string;
  readonly status: WatcherStatus;
  readonly event: WatcherEvent;
  /** When watcher info first listed this id, and when its status last changed (ms). */
  readonly since: number;
  readonly updatedAt: number;
}

/**
 * What every watcher info entry keeps alike (a live view, src/presence/watchers.ts's row): `since`
 * and `updatedAt` relative to EPOCH, small integers (src/util/epoch.ts), and the plain form the store
 * writes.
 */
export abstract class StandingEntry implements WatcherStanding {
  abstract readonly resource: string;
  abstract readonly package: string;
  /** Its stable, opaque id in watcher info. */
  abstract readonly id: string;
  abstract readonly uri: string;
  abstract readonly status: WatcherStatus;
  abstract readonly event: WatcherEvent;
  private sinceRel = 0;
  private updatedRel = 0;

  get since(): number {
    return this.sinceRel + EPOCH;
  }

  get updatedAt(): number {
    return this.updatedRel + EPOCH;
  }

  protected setTimes(since: number, updatedAt: number): void {
    this.sinceRel = sinceEpoch(since);
    this.updatedRel = sinceEpoch(updatedAt);
  }

  /** The plain entry (what the store writes). */
  toJSON(): WatcherStanding {
    return { resource: this.resource, package: this.package, id: this.id, uri: this.uri, status: this.status, event: this.event, since: this.since, updatedAt: this.updatedAt };
  }
}

/** An entry that changes in place: a live watcher view is its own entry in the registry. */
export interface ReportingWatcher extends WatcherStanding {
  stand(status: WatcherStatus, event: WatcherEvent, since: number, updatedAt: number): void;
}

/** The part of the watcher registry (src/presence/watchers.ts) a view reports to. */
export interface WatcherReport {
  get(resource: string, id: string): WatcherStanding | undefined;
  /** The watcher's status is now `status`, after `event`: the registry sets it on the watcher. */
  report(watcher: ReportingWatcher, status: WatcherStatus, event: WatcherEvent): void;
  /** The watcher's view goes while its subscription lives on (in the store, or at another node). */
  detach?(watcher: ReportingWatcher): void;
}

/** What a watcher sees of a resource right now. */
export type Seen =
  | { state: 'pending' }
  /** `by`: the presentity's rules (RFC 5025 block) or the upstream (a remote domain, XMPP), whose
   *  own reason is passed on as it came (undefined: none given). */
  | { state: 'terminated'; by: 'rules' | 'upstream'; reason: string | undefined }
  /** `polite`: RFC 5025 polite-block, shown as a presentity that never published. `key` names what
   *  this watcher may see: watchers with equal keys are shown the same document. */
  | { state: 'active'; polite: boolean; key: string; show: (doc: PidfDocument | undefined) => PidfDocument };

export type ActiveView = Extract<Seen, { state: 'active' }>;

/** RFC 3857 §4.4 watcher status for a sub-handling decision. */
function statusOf(h: SubHandling): WatcherStatus {
  return h === 'confirm' ? 'pending' : h === 'block' ? 'terminated' : 'active';
}

/** How a subscription ended, as a winfo event (RFC 3857 §4.4; RFC 6665 "invariant" has none). */
function endEvent(reason: string): WatcherEvent {
  const events: readonly WatcherEvent[] = ['deactivated', 'probation', 'rejected', 'timeout', 'giveup', 'noresource'];
  return events.includes(reason as WatcherEvent) ? (reason as WatcherEvent) : 'deactivated';
}

const UPSTREAM_DECIDES: Decision = { subHandling: 'allow', view: 'full', transform: (d) => d };

/**
 * The body of an active view in one format, memoized on the snapshot per (format, view key): a
 * change is serialized once per distinct view, however many watchers (direct, in lists) share it.
 * `tag` is undefined when no state is known yet (nothing to memoize).
 */
export function renderView(snap: PresenceSnapshot | undefined, v: ActiveView, contentType: string, render: (doc: PidfDocument) => string): { body: string; bytes?: Buffer; tag: string | undefined } {
  if (!snap) return { body: render(v.show(undefined)), tag: undefined };
  // The snapshot's rendering, bytes included: encoded once and shared by every watcher of the view.
  return snap.render(memoKey(contentType, v.key), (doc) => render(v.show(doc)));
}

/** The memo keys, built once (a list NOTIFY looks a rendering up per member and list); bounded. */
const memoKeys = new Map<string, Map<string, string>>();

function memoKey(contentType: string, key: string): string {
  let byView = memoKeys.get(contentType);
  if (byView === undefined) {
    if (memoKeys.size >= 64) memoKeys.clear();
    memoKeys.set(contentType, (byView = new Map()));
  }
  let k = byView.get(key);
  if (k === undefined) {
    if (byView.size >= 256) byView.clear();
    byView.set(key, (k = `${contentType}|${key}`));
  }
  return k;
}

/**
 * An active view (Seen's 'active' case) as one object with a method rather than an object and a
 * closure: it is made for every NOTIFY (issue 9).
 */
class Shown {
  readonly state = 'active' as const;
  readonly polite: boolean;
  readonly key: string;

  constructor(
    private readonly d: Decision,
    private readonly resource: string,
  ) {
    this.polite = d.subHandling === 'polite-block';
    this.key = this.polite ? 'polite-block' : d.view;
  }

  show(doc: PidfDocument | undefined): PidfDocument {
    return this.polite || !doc ? closedDocument(this.resource) : this.d.transform(withEntity(doc, this.resource));
  }
}

/** Builds views; holds what every view reads. */
export class WatcherViews {
  constructor(
    private readonly authorizer: Authorizer,
    private readonly watchers: WatcherReport,
    /** Whether a resource is a presentity of Herald's own domains, decided by its rules here; any
     *  other is decided by its own domain (the upstream state). */
    readonly isLocal: (resource: string) => boolean,
  ) {}

  /** Loads what deciding a watcher of `resource` needs (its rules), before the first view. */
  async prepare(resource: string): Promise<void> {
    if (this.isLocal(resource)) await this.authorizer.prepare?.(resource);
  }

  /** Calls `listener` when a presentity's rules change: its watchers' views must be seen again. */
  onChange(listener: (presentity: string) => void): void {
    this.authorizer.onChange?.(listener);
  }

  /** The view of `watcher` on `resource`; `id` is its stable, opaque id in watcher info. */
  open(resource: string, watcher: string, id: string): WatcherView {
    return new MemberView(this, resource, watcher, id);
  }

  /** For views. */
  decide(resource: string, watcher: string, sphere: string | undefined): Decision {
    return this.isLocal(resource) ? this.authorizer.decide(watcher, resource, sphere) : UPSTREAM_DECIDES;
  }

  /** For views. */
  get registry(): WatcherReport {
    return this.watchers;
  }
}

const STATUSES: readonly WatcherStatus[] = ['pending', 'active', 'waiting', 'terminated'];
const EVENTS: readonly WatcherEvent[] = ['subscribe', 'approved', 'deactivated', 'probation', 'rejected', 'timeout', 'giveup', 'noresource'];

/**
 * One watcher's view of one resource: a class, so a subscription costs one small object. While the
 * subscription lives the view is also its watcher info entry (ReportingWatcher): the registry holds
 * the view itself rather than a row repeating its resource, id, URI and status (issue 9).
 */
export abstract class WatcherView extends StandingEntry implements ReportingWatcher {
  abstract readonly watcher: string;
  protected abstract readonly views: WatcherViews;
  /** What watcher info last said of this watcher: status and event as one small integer (0: nothing yet). */
  private said = 0;

  constructor(views: WatcherViews, resource: string, id: string) {
    super();
    // A watcher info entry kept for this id (restored after a restart): the view goes on from it.
    const old = views.registry.get(resource, id);
    if (old) this.stand(old.status, old.event, old.since, old.updatedAt);
  }

  get package(): string {
    return 'presence';
  }

  get uri(): string {
    return this.watcher;
  }

  get status(): WatcherStatus {
    return STATUSES[(this.said >> 4) - 1] ?? 'pending';
  }

  get event(): WatcherEvent {
    return EVENTS[this.said & 15] ?? 'subscribe';
  }

  stand(status: WatcherStatus, event: WatcherEvent, since: number, updatedAt: number): void {
    this.said = ((STATUSES.indexOf(status) + 1) << 4) | EVENTS.indexOf(event);
    this.setTimes(since, updatedAt);
  }

  /** The decision before any state is known, at subscription time. */
  first(): SubHandling {
    return this.views.decide(this.resource, this.watcher, undefined).subHandling;
  }

  /**
   * The watcher arrives: a new one, or one coming back after it ended, is reported (RFC 5025
   * §3.2.1: the presentity sees the attempt even when it is blocked); one the registry holds as
   * pending or active (a subscription restored after a restart) keeps its entry.
   */
  arrive(): void {
    if (this.said !== 0 && (this.status === 'pending' || this.status === 'active')) return;
    const h = this.first();
    this.report(statusOf(h), h === 'block' ? 'rejected' : 'subscribe');
  }

  /** What the watcher sees of `snap` (undefined: nothing known yet), reporting any change of status. */
  see(snap: PresenceSnapshot | undefined): Seen {
    const d = this.views.decide(this.resource, this.watcher, sphereOf(snap?.document));
    const next = statusOf(d.subHandling);
    // RFC 5025 §3.2.1: a rule change moves pending→active (approved), active→pending, or ends it.
    if (this.said === 0 || next !== this.status) this.report(next, next === 'active' ? 'approved' : next === 'terminated' ? 'rejected' : 'subscribe');
    if (d.subHandling === 'block') return { state: 'terminated', by: 'rules', reason: 'rejected' };
    if (d.subHandling === 'confirm') return { state: 'pending' };
    // An upstream that authorizes by itself (a remote domain, XMPP): its state is the watcher's.
    const up = snap?.upstream;
    if (up?.state === 'pending') return { state: 'pending' };
    if (up?.state === 'terminated') return { state: 'terminated', by: 'upstream', reason: up.reason };
    // polite-block (RFC 5025 §3.2.1): looks like an accepted subscription to a user who is offline.
    return new Shown(d, this.resource);
  }

  /** The watcher is gone (`reason`: RFC 6665 §4.1.3, or the upstream's). RFC 3857 §4.7: a pending
   *  subscription that times out stays visible as "waiting". */
  leave(reason: string): void {
    this.report(this.said !== 0 && this.status === 'pending' && reason === 'timeout' ? 'waiting' : 'terminated', endEvent(reason));
  }

  /**
   * The view goes without an end (Herald stops, another node holds the subscription now): watcher
   * info keeps the entry as it stands, not the view and what it holds.
   */
  detach(): void {
    this.views.registry.detach?.(this);
  }

  private report(status: WatcherStatus, event: WatcherEvent): void {
    this.views.registry.report(this, status, event);
  }
}

/** A view held by its own (a list member's: src/rls/rls.ts), with its names as fields. */
class MemberView extends WatcherView {
  constructor(
    protected readonly views: WatcherViews,
    readonly resource: string,
    readonly watcher: string,
    readonly id: string,
  ) {
    super(views, resource, id);
  }
}
