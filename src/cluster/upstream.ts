// The presence B2BUA's upstream subscriptions in a cluster (docs/cluster.md): each is leased as
// "up:<subscription id>" by the node that holds it (claimed at its first SUBSCRIBE, released when it
// ends), and a dead node's are adopted by the survivor that wins them: parked and refreshed in the same
// dialog, as a restart does (src/events/subscriber.ts), until the taken-over watchers claim them.
import type { SubscriptionLease } from '../events/subscriber.js';
import type { DialogLeases } from './lease.js';
import { Takeover } from './takeover.js';

const KIND = 'up';

export function upstreamLease(leases: DialogLeases): SubscriptionLease {
  const name = (id: string): string => Takeover.dialog(KIND, id);
  return {
    claim: async (id) => (await leases.claim(name(id))).ok,
    // Best effort, as the notifier's: an entry left behind has no record; a takeover releases it.
    release: (id) => void leases.release(name(id)).catch(() => undefined),
  };
}

/** What the takeover hands upstream dialogs to (the SIP gateway). */
export interface UpstreamDialogs {
  adopt(id: string): Promise<void>;
  reconcile(stillOwned: (id: string) => boolean): void;
}

export function serveUpstreamDialogs(gateway: UpstreamDialogs, takeover: Takeover): void {
  takeover.register(KIND, { adopt: (id) => gateway.adopt(id), reconcile: (stillOwned) => gateway.reconcile(stillOwned) });
}
