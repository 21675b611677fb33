// The hub's vocabulary (ARCHITECTURE.md): a resource is a URI whose presence can be watched; a
// provider knows the state of some resources; the hub routes a watch to the provider and fans state out.
// Nothing here knows SIP or XMPP.
import { createHash } from 'node:crypto';
import type { PidfDocument } from '../formats/pidf.js';

/** A serialized body and its entity tag (RFC 5839 §6.1: changes whenever the body changes). */
export interface Rendered {
  readonly body: string;
  /** The body's UTF-8 bytes, encoded once (on first use) for every watcher of the view. */
  readonly bytes: Buffer;
  readonly tag: string;
}

class RenderedBody implements Rendered {
  private encoded: Buffer | undefined;
  constructor(
    readonly body: string,
    readonly tag: string,
  ) {}
  get bytes(): Buffer {
    // Its own allocation, not a slice of Node's shared 8 KB pool: a body kept while its presentity is
    // watched would otherwise keep a whole pool slab (and the garbage around it) alive.
    if (this.encoded) return this.encoded;
    const b = Buffer.allocUnsafeSlow(Buffer.byteLength(this.body, 'utf8'));
    b.write(this.body, 0, 'utf8');
    return (this.encoded = b);
  }
}

export function entityTag(body: string): string {
  // The first 12 bytes in base64url (the same 16 characters as before), encoded alone rather than
  // sliced from the whole digest's text: a tag is kept by every watcher sent it, a slice keeps its parent.
  return createHash('sha1').update(body).digest().subarray(0, 12).toString('base64url');
}

/**
 * One state of a resource, shared by every watcher of it. Immutable; `render` memoizes serialized
 * bodies per view so that a change is serialized once per distinct view, not once per watcher.
 */
export class PresenceSnapshot {
  private readonly rendered = new Map<string, Rendered>();

  constructor(
    readonly resource: string,
    /** The composed presence document, or undefined when the provider has none (nobody published). */
    readonly document: PidfDocument | undefined,
    /** Increases by one with every change of this resource seen by the hub. */
    readonly version: number,
    /** Whether the provider considers the resource to exist at all (false: 404/noresource). */
    readonly exists = true,
    /** The upstream subscription's state, for providers that subscribe upstream (RFC 4662 instance state). */
    readonly upstream?: ProviderState['upstream'],
  ) {}

  /** The body for a view (e.g. a content type plus a policy), rendered at most once per snapshot. */
  render(view: string, fn: (doc: PidfDocument | undefined) => string): Rendered {
    let r = this.rendered.get(view);
    if (r === undefined) {
      const body = fn(this.document);
      r = new RenderedBody(body, entityTag(body));
      this.rendered.set(view, r);
    }
    return r;
  }
}

/**
 * What a provider reports: the document (undefined: nothing known), whether the resource exists, and
 * for upstreams that authorize (remote domains, XMPP) the subscription state there: 'pending' while
 * authorization is awaited, 'terminated' with a reason when the upstream refused or ended it.
 */
export interface ProviderState {
  document: PidfDocument | undefined;
  exists?: boolean;
  upstream?: { state: 'active' | 'pending' | 'terminated'; reason?: string };
}

export interface ProviderWatch {
  stop(): void;
}

export interface Provider {
  readonly name: string;
  /** Whether this provider is responsible for the resource. */
  handles(resource: string): boolean;
  /**
   * Where the upstream decides by identity (a remote domain applying its own rules to each watcher),
   * the watcher the upstream watch is made for; undefined (the default) shares one upstream watch
   * among all watchers of the resource. RFC 4662 §7.2: never fan one identity's result out to others
   * unless the provider holds the full policy.
   */
  upstreamIdentity?(resource: string, watcher: string): string | undefined;
  /**
   * A provider's refusal before any watch (e.g. a federation policy that does not bridge a domain):
   * a direct subscriber gets the status, a list shows the resource terminated with the reason.
   */
  refuse?(resource: string, watcher: string): { status: number; reason: string; rlmiReason: string } | undefined;
  /**
   * Begins watching a resource (for `watcher` when upstreamIdentity named one). The provider calls
   * `update` with the current state (synchronously when it knows it) and again on every change, until
   * stop().
   */
  watch(resource: string, update: (state: ProviderState) => void, watcher?: string): ProviderWatch;
}

export type Listener = (snapshot: PresenceSnapshot) => void;

/** A listener as an object (a subscription's binding): no closure per watcher. */
export interface SnapshotListener {
  onSnapshot(snapshot: PresenceSnapshot): void;
}

/**
 * A resource as watched through the hub, for a listener object that keeps it (no per-watcher object):
 * its latest snapshot, and `leave(listener)` to stop.
 */
export interface Watched {
  current(): PresenceSnapshot | undefined;
  leave(listener: SnapshotListener): void;
}

export interface Watch {
  /** The latest snapshot (undefined until the provider first reports). */
  current(): PresenceSnapshot | undefined;
  stop(): void;
}
