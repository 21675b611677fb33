// The presence hub: routes a resource to the provider that knows it, keeps one upstream watch per
// resource however many watchers it has, and fans every change out to them.
import type { Listener, Provider, ProviderWatch, SnapshotListener, Watch } from './types.js';
import { PresenceSnapshot } from './types.js';

interface Entry {
  hub: Hub;
  key: string;
  upstream: ProviderWatch | undefined;
  listeners: Set<Listener | SnapshotListener>;
  snapshot: PresenceSnapshot | undefined;
  version: number;
}

/** One watcher's watch: two pointers (its resource's entry and itself), no closures per watcher. */
class HubWatch implements Watch {
  constructor(
    private readonly entry: Entry,
    private readonly listener: Listener | SnapshotListener,
  ) {}

  current(): PresenceSnapshot | undefined {
    return this.entry.snapshot;
  }

  stop(): void {
    this.entry.hub.unwatch(this.entry, this.listener);
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
  watch(resource: string, listener: Listener | SnapshotListener, watcher?: string): Watch {
    const provider = this.providerFor(resource);
    if (!provider) throw new NoProviderError(`no provider for ${resource}`);
    const identity = watcher !== undefined ? provider.upstreamIdentity?.(resource, watcher) : undefined;
    const key = identity === undefined ? resource : `${resource}\n${identity}`;
    let entry = this.entries.get(key);
    if (!entry) {
      const e: Entry = { hub: this, key, upstream: undefined, listeners: new Set(), snapshot: undefined, version: 0 };
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
    return new HubWatch(entry, listener);
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
