// The notifier's dialogs in a cluster: the leases (lease.ts) as the notifier's DialogOwnership seam,
// takeover of a dead node's notifier dialogs (RLS list subscriptions included: they are notifier
// dialogs, their RLMI versions in the shared record), and in-dialog requests answered at another node
// passed to the owner on its bus topic `node:<id>` (CLUSTER.md).
import { z } from 'zod';
import type { DialogOwnership, Notifier } from '../events/notifier.js';
import type { ClusterBus } from './bus.js';
import type { DialogLeases } from './lease.js';
import { Takeover } from './takeover.js';

/** Notifier dialogs are "sub:<Call-ID>|<our tag>" in Redis. */
const KIND = 'sub';

const InDialog = z.object({
  kind: z.enum(['refresh', 'unsubscribe']),
  dialog: z.string().min(1).max(1024),
  expiresAt: z.number().finite(),
  remoteCseq: z.number().int().nonnegative(),
  remoteTarget: z.string().min(1).max(2048),
  flow: z.object({
    protocol: z.enum(['UDP', 'TCP', 'TLS', 'WS']),
    address: z.string().min(1).max(64),
    port: z.number().int().min(1).max(65535),
    localPort: z.number().int().optional(),
    tlsNames: z.array(z.string().max(256)).max(16).optional(),
    serverName: z.string().max(256).optional(),
  }),
});

export function notifierOwnership(leases: DialogLeases, bus: ClusterBus): DialogOwnership {
  const name = (key: string): string => Takeover.dialog(KIND, key);
  return {
    mayAct: () => leases.mayAct(),
    check: () => leases.nodes.check(),
    claim: (key, cseq) => leases.claim(name(key), cseq),
    reserve: (key, upTo) => leases.reserve(name(key), upTo),
    // Best effort: a release that does not reach Redis leaves an entry whose record is gone; the
    // next takeover of this node finds no record and releases it then.
    release: (key) => void leases.release(name(key)).catch(() => undefined),
    ownerOf: (key) => leases.ownerOf(name(key)),
    forward: (node, notice) => bus.publish(`node:${node}`, { ...notice }),
  };
}

/** Takes over dead nodes' notifier dialogs here and hears in-dialog requests answered elsewhere. Returns the unlisten. */
export function serveNotifierDialogs(notifier: Notifier, takeover: Takeover, bus: ClusterBus): () => void {
  takeover.register(KIND, {
    adopt: (key, cseq) => notifier.adopt(key, cseq),
    reconcile: (stillOwned) => notifier.reconcile(stillOwned),
  });
  return bus.listen(`node:${bus.nodeId}`, (m) => {
    if (m.kind !== 'refresh' && m.kind !== 'unsubscribe') return; // other kinds on this topic are not ours
    const n = InDialog.safeParse(m);
    if (n.success) notifier.inDialogElsewhere(n.data);
  });
}
