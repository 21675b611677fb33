// Watching a resource through the hub from a test: every snapshot is kept, and `until` waits for one
// that matches (one shared helper for the gateway tests, scripted upstream and Kamailio alike).
import type { Hub } from '../../src/hub/hub.js';
import type { PresenceSnapshot, Watch } from '../../src/hub/types.js';

export interface WatchOptions {
  /** Which already-seen snapshot `until` answers with: the first that matches or the latest. */
  pick?: 'first' | 'latest';
  /** Default wait of `until`, in ms. */
  timeoutMs?: number;
  /** What a timeout reports about each snapshot seen. */
  describe?: (s: PresenceSnapshot) => unknown;
}

export interface TestWatch {
  w: Watch;
  states: PresenceSnapshot[];
  until(pred: (s: PresenceSnapshot) => boolean, ms?: number): Promise<PresenceSnapshot>;
}

export function watchHub(hub: Pick<Hub, 'watch'>, resource: string, watcher: string, o: WatchOptions = {}): TestWatch {
  const states: PresenceSnapshot[] = [];
  const waiters: { pred: (s: PresenceSnapshot) => boolean; resolve: (s: PresenceSnapshot) => void }[] = [];
  const w = hub.watch(
    resource,
    (s) => {
      states.push(s);
      for (const x of [...waiters]) {
        if (!x.pred(s)) continue;
        waiters.splice(waiters.indexOf(x), 1);
        x.resolve(s);
      }
    },
    watcher,
  );
  // A provider that knows the state reports it synchronously, inside hub.watch(): before the listener.
  const now = w.current();
  if (now) states.push(now);
  const describe = o.describe ?? ((s: PresenceSnapshot) => s.upstream);
  const until = (pred: (s: PresenceSnapshot) => boolean, ms = o.timeoutMs ?? 5000): Promise<PresenceSnapshot> => {
    const have = (o.pick === 'latest' ? [...states].reverse() : states).find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no matching state for ${resource} in ${ms} ms: ${JSON.stringify(states.map(describe))}`)), ms);
      waiters.push({ pred, resolve: (s) => (clearTimeout(t), resolve(s)) });
    });
  };
  return { w, states, until };
}
