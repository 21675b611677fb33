// The presence hub: routes a resource to the provider that knows it, keeps one upstream watch per
// resource however many watchers it has, and fans every change out to them.
import type { Listener, Provider, ProviderWatch, SnapshotListener, Watch, Watched } from './types.js';
import { PresenceSnapshot } from './types.js';

/** One watched resource (or resource and upstream identity): its listeners and latest snapshot. */
class Entry implements Watched {
  upstream: ProviderWatch | undefined = undefined;
  readonly listeners = new Set<Listener | SnapshotListener>();
  snapshot: PresenceSnapshot | undefined = undefined;
  version = 0;

  constructor(
    readonly hub: Hub,
    readonly key: string,
  ) {}

  current(): PresenceSnapshot | undefined {
    return this.snapshot;
  }

  leave(listener: Listener | SnapshotListener): void {
    this.hub.unwatch(this, listener);
  }
}

/** A function listener's watch: two pointers (its resource's entry and the listener). */
class HubWatch implements Watch {
  constructor(
    private readonly entry: Entry,
    private readonly listener: Listener,
  ) {}

  current(): PresenceSnapshot | undefined {
    return this.entry.snapshot;
  }

  stop(): void {
    this.entry.leave(this.listener);
  }
}

export class NoProviderError extends Error {}

export class Hub {
  private readonly providers: Provider[] = [];
  private readonly entries = new Map<string, Entry>();

  /** Providers are asked in registration order; the first that handles a resource owns it. */
  register(provider: Provider): void {
    this.providers.push(provider);
  }

  providerFor(resource: string): Provider | undefined {
    return this.providers.find((p) => p.handles(resource));
  }

  /**
   * Watches a resource for a watcher. Throws NoProviderError when no provider handles it. Watchers
   * share one upstream watch per resource, or per (resource, identity) where the provider asks.
   */
  watch(resource: string, listener: Listener, watcher?: string): Watch {
    return new HubWatch(this.join(resource, listener, watcher), listener);
  }

  /**
   * The same for a listener object that keeps what this returns (a subscription's binding: no object
   * per watcher besides the listener itself); it stops with `leave(listener)`.
   */
  join(resource: string, listener: Listener | SnapshotListener, watcher?: string): Entry {
    const provider = this.providerFor(resource);
    if (!provider) throw new NoProviderError(`no provider for ${resource}`);
    const identity = watcher !== undefined ? provider.upstreamIdentity?.(resource, watcher) : undefined;
    const key = identity === undefined ? resource : `${resource}\n${identity}`;
    let entry = this.entries.get(key);
    if (!entry) {
      const e = new Entry(this, key);
      entry = e;
      this.entries.set(key, e);
      e.upstream = provider.watch(
        resource,
        (state) => {
          e.snapshot = new PresenceSnapshot(resource, state.document, e.version++, state.exists ?? true, state.upstream);
          for (const l of e.listeners) {
            if (typeof l === 'function') l(e.snapshot);
            else l.onSnapshot(e.snapshot);
          }
        },
        identity,
      );
    }
    entry.listeners.add(listener);
    return entry;
  }

  /** For watches: a watcher leaves; the last one of a resource ends its upstream watch. */
  unwatch(e: Entry, listener: Listener | SnapshotListener): void {
    if (!e.listeners.delete(listener) || e.listeners.size > 0) return;
    e.upstream?.stop();
    if (this.entries.get(e.key) === e) this.entries.delete(e.key);
  }

  /**
   * The watchers of a resource's shared watch (not those of per-identity upstream watches, whose
   * state their own domain decides).
   */
  listenersOf(resource: string): Iterable<Listener | SnapshotListener> {
    return this.entries.get(resource)?.listeners ?? [];
  }

  /** The current snapshot of a watched resource, if any watcher holds it. */
  peek(resource: string): PresenceSnapshot | undefined {
    return this.entries.get(resource)?.snapshot;
  }

  /** The resources watched right now (the admin API). */
  resources(): string[] {
    return [...new Set([...this.entries.keys()].map((k) => k.split('\n')[0]!))];
  }

  /** Observable cost: upstream watches (one per resource) and watchers behind them. */
  stats(): { resources: number; watchers: number } {
    let watchers = 0;
    for (const e of this.entries.values()) watchers += e.listeners.size;
    return { resources: this.entries.size, watchers };
  }
}
