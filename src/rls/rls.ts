// The resource list server (RFC 4662): one SUBSCRIBE to a list URI, one back-end watch per member
// through the hub (shared with every other watcher of that member), and RLMI multipart/related
// NOTIFYs: full state first (version 0) and after each refresh, then partial state holding only the
// members that changed, batched to at most one NOTIFY per interval (RFC 6446), never more than
// `maxNotifyBytes` (the rest follows as partial state, RFC 4662 §5.2).
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { CT, acceptsExactly, acceptsType } from '../formats/content-types.js';
import { diffPidf, renderPidfFull } from '../formats/pidf-diff.js';
import { serializePidf, type PidfDocument } from '../formats/pidf.js';
import { newBoundary, renderMultipart, type BodyPart } from '../formats/multipart.js';
import { renderRlmiOf, renderRlmiResource, type InstanceState, type RlmiInstance } from '../formats/rlmi.js';
import type { FlatMember } from '../formats/resource-lists.js';
import { NoProviderError, type Hub } from '../hub/hub.js';
import type { PresenceSnapshot, SnapshotListener, Watched } from '../hub/types.js';
import { renderView, type ActiveView, type WatcherView, type WatcherViews } from '../policy/view.js';
import { watcherId } from '../presence/watchers.js';
import { header } from '../sip/message.js';
import { heldSubscription, type AdmitContext, type Admission, type Binding, type HeldSubscription, type NotifyContent, type TerminationReason } from '../events/subscription.js';
import type { ListSource } from './list-source.js';
import { listNotifyQuirks, type ListNotifyQuirks } from './client-quirks.js';

export interface RlsOptions {
  /** Minimum milliseconds between NOTIFYs of one list subscription (changes between are batched). */
  minIntervalMs: number;
  /** Largest NOTIFY body; a larger full state is completed by partial NOTIFYs. */
  maxNotifyBytes: number;
  /** Domain for Content-IDs. */
  domain: string;
  /**
   * Whether a service's nested lists go out flattened (one RLMI) rather than as nested RLMI
   * (RFC 4662 §5.4); for clients that cannot read nested multiparts. Absent: never flattened.
   */
  flatten?: (serviceUri: string) => boolean;
}

export interface ListSubscriptionView {
  key: string;
  list: string;
  watcher: string;
  /** 'unknown': no state known yet (no instance in RLMI). */
  members: { uri: string; state: 'active' | 'pending' | 'terminated' | 'unknown'; reason?: string }[];
}

/**
 * One member of one list subscription. It is the hub's listener itself (no closure per member and
 * list): a change of the member's state marks it in its list.
 */
class Member implements SnapshotListener {
  /** The member's resource as the hub holds it (this member is one of its listeners). */
  watched: Watched | undefined = undefined;
  /** What this list's watcher may see of the member (and how winfo shows the watcher to it). */
  view: WatcherView | undefined = undefined;
  /** Fixed state for members without a watch (no provider, refused, removed from the list). */
  fixed: InstanceState | undefined = undefined;
  reason: string | undefined = undefined;
  /** RFC 5263 parts: the document this watcher last got for the member (undefined: full owed). */
  lastDoc: PidfDocument | undefined = undefined;
  /**
   * What the member looks like to this subscriber, kept from the entity-tag check before a NOTIFY
   * (RFC 5839) to its rendering, which would otherwise see the member twice; dropped once the
   * NOTIFY is rendered (or found unneeded), so a held list keeps no per-member views.
   */
  seen: MemberView | undefined = undefined;
  /** The member's part of the list's entity-tag as last computed (state and body tag). */
  fingerprint: string | undefined = undefined;
  /** RLMI <name> elements: the display name from the list, if any. */
  names: { text: string }[];

  constructor(
    private readonly list: ListBinding,
    readonly uri: string,
    private name: string | undefined,
    readonly instanceId: string,
    /** The nested lists it sits in, outermost first (FlatMember.path); [] at the top level. */
    readonly path: readonly string[],
  ) {
    this.names = name ? [{ text: name }] : NO_NAMES;
  }

  get displayName(): string | undefined {
    return this.name;
  }

  set displayName(name: string | undefined) {
    if (name === this.name) return;
    this.name = name;
    this.names = name ? [{ text: name }] : NO_NAMES;
  }

  onSnapshot(): void {
    this.list.memberChanged(this.uri);
  }
}

const NO_NAMES: { text: string }[] = [];
const TOP_LEVEL: readonly string[] = [];

/** What the size bound has left for one NOTIFY, shared by every level of nesting. */
interface Budget {
  bytes: number;
  parts: number;
}

/** What one member looks like to this subscriber right now; body only for active instances. */
interface MemberView {
  /** Its RLMI <resource> element (renderRlmiResource). */
  rlmi: string;
  /** Its instance's state ('unknown': no instance yet) and reason, for the admin API. */
  state: InstanceState | 'unknown';
  reason: string | undefined;
  part: BodyPart | undefined;
  /** What of it the entity-tag covers (RFC 5839 §6.5): state, reason and body, not versions. */
  fingerprint: string;
  /** Active members: the document shown (computed on demand, for partial PIDF parts). */
  doc: (() => PidfDocument) | undefined;
}

const RLMI_OVERHEAD = 400;

/** Notifications per second for an interval, as RFC 6446 writes rates. */
const rate = (ms: number): string => (1000 / ms).toFixed(3).replace(/\.?0+$/, '');

function supportsEventlist(v: string | undefined): boolean {
  return (v ?? '').split(',').some((t) => t.trim().toLowerCase() === 'eventlist');
}

function eventParam(eventHeader: string | undefined, name: string): number | undefined {
  const m = new RegExp(`;\\s*${name}\\s*=\\s*([0-9.]+)`, 'i').exec(eventHeader ?? '');
  const v = m ? Number(m[1]) : NaN;
  return v > 0 && Number.isFinite(v) ? v : undefined;
}

/**
 * The least time between two NOTIFYs a subscriber asks for: RFC 6446 §4 `max-rate` (notifications per
 * second), or `min-interval` (seconds; the name some clients and drafts use for the same thing).
 */
export function requestedIntervalMs(eventHeader: string | undefined): number | undefined {
  const rate = eventParam(eventHeader, 'max-rate');
  if (rate !== undefined) return Math.ceil(1000 / rate);
  const s = eventParam(eventHeader, 'min-interval');
  return s !== undefined ? Math.ceil(s * 1000) : undefined;
}

/**
 * The most time between two NOTIFYs a subscriber asks for: RFC 6446 §4 `min-rate`, or `max-interval`
 * (seconds). Local policy (§5.2): never more often than once a second.
 */
export function requestedMaxIntervalMs(eventHeader: string | undefined): number | undefined {
  const rate = eventParam(eventHeader, 'min-rate');
  const s = eventParam(eventHeader, 'max-interval');
  const ms = rate !== undefined ? 1000 / rate : s !== undefined ? s * 1000 : undefined;
  return ms === undefined ? undefined : Math.max(1000, Math.ceil(ms));
}

export class ResourceListServer {
  constructor(
    private readonly lists: ListSource,
    private readonly hub: Hub,
    private readonly views: WatcherViews,
    private readonly opts: RlsOptions,
    private readonly log: Logger,
  ) {
    lists.onChange(() => {
      for (const b of this.bindings) void b.reload();
    });
    // A member's rules changed: its view for each list watcher may have too.
    views.onChange((presentity) => {
      for (const b of this.bindings) b.rulesChanged(presentity);
    });
  }

  private readonly bindings = new Set<ListBinding>();

  /** Every list subscription with its members' instance states as the subscriber sees them (the admin API). */
  subscriptions(): ListSubscriptionView[] {
    return [...this.bindings].map((b) => b.describe());
  }

  isList(uri: string): boolean {
    return this.lists.has(uri);
  }

  async admit(ctx: AdmitContext): Promise<Admission> {
    const rq = ctx.request;
    if (rq) {
      // RFC 4662 §4.1/§4.3: a list URI without `Supported: eventlist` ⇒ 421 with Require.
      if (!supportsEventlist(header(rq, 'supported'))) return { ok: false, status: 421, reason: 'Extension Required', headers: [['Require', 'eventlist']] };
      // RFC 4662 §5.1: list state is multipart/related with an RLMI root; a subscriber that says what it
      // accepts must accept both (no Accept: the package's default, which for a list is RLMI).
      const accept = header(rq, 'accept');
      if (accept !== undefined && !(acceptsType(accept, CT.RLMI) && acceptsType(accept, CT.MULTIPART_RELATED))) {
        return { ok: false, status: 406, reason: 'Not Acceptable', headers: [['Accept', `${CT.MULTIPART_RELATED}, ${CT.RLMI}, ${CT.PIDF}`]] };
      }
    }
    const resolved = await this.lists.resolve(ctx.resource);
    if (!resolved) return { ok: false, status: 404, reason: 'Not Found' };
    // A private list (a user's roster) is its owner's alone: membership is not for others to read, nor
    // may they make the gateway subscribe to every contact on it.
    if (resolved.owner !== undefined && resolved.owner !== ctx.watcher) return { ok: false, status: 403, reason: 'Forbidden' };
    if (resolved.service.packages && !resolved.service.packages.includes('presence')) return { ok: false, status: 489, reason: 'Bad Event' };
    if (resolved.loop && rq) return { ok: false, status: 502, reason: 'List Loop' };
    const event = rq ? header(rq, 'event') : undefined;
    const wanted = requestedIntervalMs(event);
    const interval = Math.max(this.opts.minIntervalMs, wanted ?? 0);
    const most = requestedMaxIntervalMs(event);
    const rates = { intervalMs: interval, maxIntervalMs: most === undefined ? undefined : Math.max(most, interval), askedMaxRate: wanted !== undefined };
    // RFC 5263 for list members: parts in pidf-diff for a subscriber that accepts it beside PIDF. A
    // restored subscription (no SUBSCRIBE to read) sends PIDF parts, which it accepts too.
    const partial = rq !== undefined && acceptsExactly(header(rq, 'accept'), CT.PIDF_DIFF) && acceptsExactly(header(rq, 'accept'), CT.PIDF);
    const quirks = listNotifyQuirks(ctx.userAgent);
    const b = new ListBinding(this, heldSubscription(ctx), rates, quirks, this.opts, partial);
    this.bindings.add(b);
    await b.setMembers(resolved.members);
    return {
      ok: true,
      contentType: CT.MULTIPART_RELATED,
      binding: b,
      headers: [['Require', 'eventlist']],
    };
  }

  forget(b: ListBinding): void {
    this.bindings.delete(b);
  }

  // For ListBinding: the collaborators it reads.
  get deps(): { hub: Hub; views: WatcherViews; lists: ListSource } {
    return { hub: this.hub, views: this.views, lists: this.lists };
  }
}

class ListBinding implements Binding {
  private members = new Map<string, Member>();
  private readonly dirty = new Set<string>();
  private full = true;
  private lastSent = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private heartbeat: NodeJS.Timeout | undefined;
  private readonly intervalMs: number;
  /** RFC 6446 min-rate: a NOTIFY at least this often, changed or not (undefined: none asked). */
  private readonly maxIntervalMs: number | undefined;
  /** RFC 6446 §5.2: the applied max-rate is echoed to a subscriber that asked for one, and only then. */
  private readonly askedMaxRate: boolean;
  /** The min-rate heartbeat is due: a NOTIFY even if nothing changed. */
  private forceNext = false;
  /** The list's entity-tag as last computed; undefined once anything it covers may have changed. */
  private tag: string | undefined;
  /** The RLMI root part's instance token (from the list URI, fixed for the subscription). */
  private rootId: string | undefined;

  constructor(
    private readonly rls: ResourceListServer,
    /** The subscription (not its AdmitContext: the SUBSCRIBE is not kept for the subscription's life). */
    private readonly ctx: HeldSubscription,
    rates: { intervalMs: number; maxIntervalMs: number | undefined; askedMaxRate: boolean },
    private readonly quirks: ListNotifyQuirks,
    private readonly opts: RlsOptions,
    /** Member parts as RFC 5262 pidf-full, then patches (RFC 5263). */
    private readonly partial = false,
  ) {
    this.intervalMs = rates.intervalMs;
    this.maxIntervalMs = rates.maxIntervalMs;
    this.askedMaxRate = rates.askedMaxRate;
  }

  private instanceId(uri: string): string {
    return createHash('sha1').update(`${this.ctx.key}|${uri}`).digest('base64url').slice(0, 10).replace(/[-_]/g, 'x');
  }

  /** Brings the member set to `list`: new members are watched, removed ones end terminated. */
  async setMembers(list: FlatMember[]): Promise<void> {
    const { hub, views } = this.rls.deps;
    const next = new Map<string, Member>();
    for (const m of list) {
      const old = this.members.get(m.uri);
      if (old && old.fixed !== 'terminated') {
        old.displayName = m.displayName;
        old.seen = undefined;
        next.set(m.uri, old);
        continue;
      }
      const member = new Member(this, m.uri, m.displayName, this.instanceId(m.uri), m.path.length === 0 ? TOP_LEVEL : [...m.path]);
      const provider = hub.providerFor(m.uri);
      const refusal = provider?.refuse?.(m.uri, this.ctx.watcher);
      if (!provider || refusal) {
        member.fixed = 'terminated';
        member.reason = refusal?.rlmiReason ?? 'noresource';
      } else {
        await views.prepare(m.uri);
        // RFC 3857: the member's owner sees this watcher in its watcher info, however it came.
        member.view = views.open(m.uri, this.ctx.watcher, watcherId(`${this.ctx.key}|${m.uri}`));
        member.view.arrive();
        try {
          member.watched = hub.join(m.uri, member, this.ctx.watcher);
        } catch (e) {
          if (!(e instanceof NoProviderError)) throw e;
          member.view.leave('noresource');
          member.view = undefined;
          member.fixed = 'terminated';
          member.reason = 'noresource';
        }
      }
      next.set(m.uri, member);
      this.dirty.add(m.uri);
    }
    for (const [uri, old] of this.members) {
      if (next.has(uri)) continue;
      // Removed from the list: shown terminated once (RFC 4662 §5.2), then gone from later full states.
      old.watched?.leave(old);
      old.watched = undefined;
      old.view?.leave('deactivated');
      old.view = undefined;
      old.fixed = 'terminated';
      old.reason = 'deactivated';
      old.seen = undefined;
      this.removed.set(uri, old);
      this.dirty.add(uri);
    }
    this.members = next;
    this.tag = undefined;
  }

  private readonly removed = new Map<string, Member>();

  async reload(): Promise<void> {
    if (this.closed) return;
    const r = await this.rls.deps.lists.resolve(this.ctx.resource);
    if (this.closed) return;
    await this.setMembers(r?.members ?? []);
    this.schedule();
  }

  rulesChanged(presentity: string): void {
    if (!this.closed && this.members.get(presentity)?.view) this.memberChanged(presentity);
  }

  /** For Member: its state changed. */
  memberChanged(uri: string): void {
    const m = this.members.get(uri);
    if (m) m.seen = undefined;
    this.tag = undefined;
    this.dirty.add(uri);
    this.schedule();
  }

  /** At most one NOTIFY per interval: the first change after a quiet interval goes at once. */
  private schedule(): void {
    if (this.closed || this.timer) return;
    const wait = this.lastSent + this.intervalMs - Date.now();
    if (wait <= 0) {
      this.ctx.changed();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.closed) this.ctx.changed();
    }, wait);
  }

  describe(): ListSubscriptionView {
    return {
      key: this.ctx.key,
      list: this.ctx.resource,
      watcher: this.ctx.watcher,
      members: [...this.members.values()].map((m) => {
        const v = m.seen ?? this.see(m);
        return { uri: m.uri, state: v.state, ...(v.reason ? { reason: v.reason } : {}) };
      }),
    };
  }

  private view(m: Member): MemberView {
    return (m.seen ??= this.see(m));
  }

  /** A member without a body part: pending, terminated, or not known yet (no instance, RFC 4662 §5.2). */
  private bodiless(m: Member, state: InstanceState | 'unknown', reason?: string): MemberView {
    const instances: RlmiInstance[] = state === 'unknown' ? [] : [reason ? { id: m.instanceId, state, reason } : { id: m.instanceId, state }];
    return { rlmi: renderRlmiResource({ uri: m.uri, names: m.names, instances }), state, reason, part: undefined, fingerprint: `${state}|${reason ?? ''}`, doc: undefined };
  }

  private see(m: Member): MemberView {
    if (m.fixed) return this.bodiless(m, m.fixed, m.reason);
    const snap = m.watched?.current();
    if (!snap) return this.bodiless(m, 'unknown');
    const v = (m.view as WatcherView).see(snap);
    if (v.state === 'pending') return this.bodiless(m, 'pending');
    if (v.state === 'terminated') return this.bodiless(m, 'terminated', v.by === 'rules' ? 'rejected' : (v.reason ?? 'noresource'));
    // The same memo as a direct subscription with the same view: one serialization serves both, and
    // every list holding the member.
    const r = renderView(snap, v, CT.PIDF, serializePidf);
    const cid = `${m.instanceId}.${snap.version}@${this.opts.domain}`;
    return {
      rlmi: renderRlmiResource({ uri: m.uri, names: m.names, instances: [{ id: m.instanceId, state: 'active', cid }] }),
      state: 'active',
      reason: undefined,
      part: { contentType: PIDF_PART, contentId: cid, body: r.body },
      fingerprint: `active|${r.tag ?? r.body}`,
      doc: this.partial ? shownDocument(v, snap) : undefined,
    };
  }

  /**
   * RFC 5839 §6.4–6.5: one entity-tag for the whole list as this watcher sees it (every member's
   * state and body, in list order), whether the NOTIFY that carries it is full or partial. Members
   * not marked changed keep the fingerprint they had, so this costs a view only of changed ones, and
   * one digest of one string.
   */
  currentTag(): string | undefined {
    if (this.forceNext) return undefined;
    if (this.tag !== undefined) return this.tag;
    let all = '';
    for (const m of this.members.values()) {
      let f = this.dirty.has(m.uri) ? undefined : m.fingerprint;
      if (f === undefined) f = m.fingerprint = this.view(m).fingerprint;
      all += `${m.uri}|${m.displayName ?? ''}|${f}\n`;
    }
    this.tag = createHash('sha1').update(all).digest('base64url').slice(0, 20);
    return this.tag;
  }

  synced(): void {
    for (const m of this.members.values()) {
      if (this.partial) m.lastDoc = this.view(m).doc?.();
      m.seen = undefined;
    }
    this.full = false;
    this.dirty.clear();
    this.removed.clear();
  }

  content(): NotifyContent {
    const full = this.full;
    this.full = false;
    if (full) {
      // Full state is the subscriber's resync (first NOTIFY, refresh): every member is seen anew.
      for (const m of this.members.values()) m.seen = undefined;
      this.tag = undefined;
    }
    const pick: Member[] = [];
    if (full) for (const m of this.members.values()) pick.push(m);
    else {
      for (const u of this.dirty) {
        const m = this.members.get(u) ?? this.removed.get(u);
        if (m !== undefined) pick.push(m);
      }
    }
    this.dirty.clear();
    const nested = !this.opts.flatten?.(this.ctx.resource);
    const { resources, parts } = this.level(pick, 0, full, nested, { bytes: RLMI_OVERHEAD, parts: 0 });
    for (const m of pick) m.seen = undefined;
    this.removed.clear();
    const version = this.ctx.nextVersion();
    const rlmiCid = `rlmi.${version}.${(this.rootId ??= this.instanceId(this.ctx.resource))}@${this.opts.domain}`;
    const rlmi = renderRlmiOf({ uri: this.ctx.resource, version, fullState: full, names: [] }, resources);
    parts.unshift({ contentType: RLMI_PART, contentId: rlmiCid, body: rlmi });
    const mp = renderMultipart({ type: CT.RLMI, start: rlmiCid, boundary: newBoundary(), parts, contentIdStyle: this.quirks.bareContentId ? 'bare' : 'standard' });
    this.lastSent = Date.now();
    if (this.maxIntervalMs !== undefined && !this.closed) {
      // min-rate: if nothing else goes out before then, a NOTIFY (partial, possibly empty) still does.
      if (this.heartbeat) clearTimeout(this.heartbeat);
      this.heartbeat = setTimeout(() => {
        this.heartbeat = undefined;
        this.forceNext = true;
        if (!this.closed) this.ctx.changed();
      }, this.maxIntervalMs);
      this.heartbeat.unref();
    }
    if (this.dirty.size > 0) {
      // What did not fit goes next, after the interval.
      setImmediate(() => this.schedule());
    }
    this.forceNext = false;
    return {
      state: 'active',
      body: mp.body,
      contentType: mp.contentType,
      // What did not fit is still owed: no tag claims the whole list until it is sent.
      tag: this.dirty.size > 0 ? undefined : this.currentTag(),
      headers: REQUIRE_EVENTLIST,
      // RFC 6446 §5.2: the rates applied are echoed to a subscriber that asked for rate control (the
      // value may be Herald's own, when it imposes a slower one). Without a request no parameter is sent:
      // Herald's batching interval is then its local throttle, as for any notifier (RFC 6665 §4.2.1.3).
      stateParams: `${this.askedMaxRate && this.intervalMs > 0 ? `;max-rate=${rate(this.intervalMs)}` : ''}${this.maxIntervalMs !== undefined ? `;min-rate=${rate(this.maxIntervalMs)}` : ''}`,
      ...(this.quirks.eventSpelling ? { eventSpelling: this.quirks.eventSpelling } : {}),
    };
  }

  refreshed(): void {
    this.full = true;
  }

  /**
   * The RLMI resources (as written XML) and body parts of one list level. Members in a nested list
   * (RFC 4662 §5.4, nested lists as nested RLMI) become one resource for that list, whose active
   * instance points at a multipart/related part holding the nested list's own RLMI (its URI, name and
   * version) and its members' parts; `nested` false flattens every level into this one.
   */
  private level(members: readonly Member[], depth: number, full: boolean, nested: boolean, budget: Budget): { resources: string[]; parts: BodyPart[] } {
    const resources: string[] = [];
    const parts: BodyPart[] = [];
    const groups = new Map<string, { slot: number; members: Member[] }>();
    for (const m of members) {
      const g = nested ? m.path[depth] : undefined;
      if (g !== undefined) {
        const group = groups.get(g);
        if (group) group.members.push(m);
        else {
          // The nested list takes the place of its first member; filled in below.
          groups.set(g, { slot: resources.length, members: [m] });
          resources.push('');
        }
        continue;
      }
      const v = this.view(m);
      if (this.members.get(m.uri) === m) m.fingerprint = v.fingerprint;
      const size = v.part ? Buffer.byteLength(v.part.body) + 200 : 0;
      if (v.part && budget.bytes + size > this.opts.maxNotifyBytes && budget.parts > 0) {
        // Over the size bound: list the resource without an instance now (state not given) and send
        // its state in a partial NOTIFY right after (RFC 4662 §5.2 permits completing full state so).
        resources.push(renderRlmiResource({ uri: m.uri, names: m.names, instances: [] }));
        this.dirty.add(m.uri);
        continue;
      }
      budget.bytes += size + 150;
      resources.push(v.rlmi);
      if (v.part) {
        parts.push(this.partial && v.doc ? this.partialPart(m, v.part, v.doc(), full) : v.part);
        budget.parts++;
      } else m.lastDoc = undefined;
    }
    for (const [name, group] of groups) {
      const uri = this.nestedUri(group.members[0]!.path.slice(0, depth + 1));
      const inner = this.level(group.members, depth + 1, full, nested, budget);
      const version = this.ctx.nextVersion(uri);
      const id = this.instanceId(uri);
      const rlmiCid = `rlmi.${version}.${id}@${this.opts.domain}`;
      const names = [{ text: name }];
      const mp = renderMultipart({
        type: CT.RLMI,
        start: rlmiCid,
        boundary: newBoundary(),
        parts: [{ contentType: RLMI_PART, contentId: rlmiCid, body: renderRlmiOf({ uri, version, fullState: full, names }, inner.resources) }, ...inner.parts],
      });
      const cid = `list.${version}.${id}@${this.opts.domain}`;
      budget.bytes += 400;
      resources[group.slot] = renderRlmiResource({ uri, names, instances: [{ id, state: 'active', cid }] });
      parts.push({ contentType: mp.contentType, contentId: cid, body: mp.body });
    }
    return { resources, parts };
  }

  /**
   * RFC 5263 §3 for one member's part: pidf-full with the member's own version in full state (and
   * whenever the patch would not be smaller), else the patch from what this watcher last got.
   */
  private partialPart(m: Member, part: BodyPart, doc: PidfDocument, full: boolean): BodyPart {
    const version = this.ctx.nextVersion(`pidf-diff|${m.uri}`);
    const patch = !full && m.lastDoc ? diffPidf(m.lastDoc, doc, version) : undefined;
    m.lastDoc = doc;
    const body = patch !== undefined && Buffer.byteLength(patch) < Buffer.byteLength(part.body) ? patch : renderPidfFull(doc, version);
    return { ...part, contentType: `${CT.PIDF_DIFF};charset="UTF-8"`, body };
  }

  /**
   * A nested list's URI in RLMI: the service URI with the nested list's path (list names, or an
   * external list's anchor) as a `list` parameter, stable across NOTIFYs and restarts.
   */
  private nestedUri(path: readonly string[]): string {
    return `${this.ctx.resource};list=${path.map((p) => encodeURIComponent(p)).join('/')}`;
  }

  close(reason?: TerminationReason): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.heartbeat) clearTimeout(this.heartbeat);
    for (const m of this.members.values()) {
      m.watched?.leave(m);
      // undefined: shutdown, the subscription lives on in the store (and in watcher info).
      if (reason !== undefined) m.view?.leave(reason);
      else m.view?.detach();
    }
    this.rls.forget(this);
  }
}

const PIDF_PART = `${CT.PIDF};charset="UTF-8"`;
const RLMI_PART = `${CT.RLMI};charset="UTF-8"`;
const REQUIRE_EVENTLIST: [string, string][] = [['Require', 'eventlist']];

/** The document an active view shows of a snapshot (for RFC 5263 parts), computed when asked. */
function shownDocument(v: ActiveView, snap: PresenceSnapshot): () => PidfDocument {
  return () => v.show(snap.document);
}
