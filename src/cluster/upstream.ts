// The presence B2BUA's upstream subscriptions in a cluster (docs/cluster.md): each is leased as
// "up:<subscription id>" by the node that holds it (claimed at its first SUBSCRIBE, released when it
// ends), and a dead node's are adopted by the survivor that wins them: parked and refreshed in the same
// dialog, as a restart does (src/events/subscriber.ts), until the taken-over watchers claim them.
// An upstream NOTIFY that lands at another node (the remote notifier sends to the load balancer) is
// passed to the owner on `node:<owner>` and answered with the owner's answer; owner dead: adopted first.
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { NotifyRequest, NotifyTx, SubscriberRecord, SubscriptionLease } from '../events/subscriber.js';
import type { NameAddr } from '../sip/message.js';
import type { ServerTx } from '../sip/stack.js';
import type { ClusterBus } from './bus.js';
import type { DialogLeases } from './lease.js';
import { Takeover } from './takeover.js';

const KIND = 'up';
const name = (id: string): string => Takeover.dialog(KIND, id);
/** How long a node waits for the owner's answer to a NOTIFY it passed on (the notifier's Timer F is 32 s). */
const ANSWER_MS = 4000;

export function upstreamLease(leases: DialogLeases): SubscriptionLease {
  return {
    claim: async (id) => (await leases.claim(name(id))).ok,
    // Best effort, as the notifier's: an entry left behind has no record; a takeover releases it.
    release: (id) => void leases.release(name(id)).catch(() => undefined),
    mayAct: () => leases.mayAct(),
  };
}

/** What this module needs of the SIP gateway. */
export interface UpstreamDialogs {
  adopt(id: string): Promise<void>;
  reconcile(stillOwned: (id: string) => boolean): void;
  handleNotifyHere(tx: NotifyTx): boolean;
  stored(id: string): Promise<SubscriberRecord | undefined>;
  strayNotify: ((tx: ServerTx, ids: string[]) => void) | undefined;
}

/** The part of a NOTIFY the owner's subscriber reads (NotifyRequest), on the bus. */
const PassedOn = z.object({
  kind: z.literal('upstream-notify'),
  ref: z.string().min(1).max(64),
  callId: z.string().min(1).max(1024),
  fromUri: z.string().max(2048),
  fromTag: z.string().max(256).optional(),
  toUri: z.string().max(2048),
  toTag: z.string().min(1).max(256),
  cseq: z.number().int().nonnegative(),
  contact: z.string().max(2048).optional(),
  recordRoute: z.array(z.string().max(2048)).max(16),
  headers: z.record(z.string().max(64), z.string().max(4096)),
  body: z.string().max(1 << 20),
  bodyBytes: z.number().int().nonnegative(),
});
const Answer = z.object({ kind: z.literal('upstream-notify-answer'), ref: z.string().min(1).max(64), status: z.number().int().min(100).max(699), reason: z.string().max(256) });

/** The headers the NOTIFY handling reads (RFC 6665 §8.2). */
const READ = ['event', 'subscription-state', 'content-type'];

function passedOn(ref: string, rq: NotifyRequest): z.infer<typeof PassedOn> {
  const headers: Record<string, string> = {};
  for (const h of READ) {
    const v = rq.headers.get(h);
    if (v !== undefined) headers[h] = v;
  }
  const fromTag = rq.from.params['tag'];
  return {
    kind: 'upstream-notify',
    ref,
    callId: rq.callId,
    fromUri: rq.from.uri,
    ...(fromTag ? { fromTag } : {}),
    toUri: rq.to.uri,
    toTag: rq.to.params['tag'] ?? '',
    cseq: rq.cseq.seq,
    ...(rq.contact[0] ? { contact: rq.contact[0].uri } : {}),
    recordRoute: rq.recordRoute.map((r) => r.uri),
    headers,
    body: rq.body,
    bodyBytes: rq.bodyBytes,
  };
}

function received(m: z.infer<typeof PassedOn>): NotifyRequest {
  const na = (uri: string, tag: string | undefined): NameAddr => ({ display: undefined, uri, params: tag ? { tag } : {} });
  return {
    method: 'NOTIFY',
    callId: m.callId,
    from: na(m.fromUri, m.fromTag),
    to: na(m.toUri, m.toTag),
    cseq: { seq: m.cseq, method: 'NOTIFY' },
    headers: new Map(Object.entries(m.headers)),
    contact: m.contact ? [na(m.contact, undefined)] : [],
    recordRoute: m.recordRoute.map((uri) => na(uri, undefined)),
    body: m.body,
    bodyBytes: m.bodyBytes,
  };
}

/** Takes over dead nodes' upstream dialogs here, and passes NOTIFYs of other nodes' dialogs to them. Returns the unlisten. */
export function serveUpstreamDialogs(gateway: UpstreamDialogs, takeover: Takeover, leases: DialogLeases, bus: ClusterBus): () => void {
  takeover.register(KIND, { adopt: (id) => gateway.adopt(id), reconcile: (stillOwned) => gateway.reconcile(stillOwned) });
  const waiting = new Map<string, (status: number, reason: string) => void>();

  async function owning(tx: ServerTx, ids: string[]): Promise<void> {
    const rq = tx.request;
    let id: string | undefined;
    for (const c of ids) {
      const rec = await gateway.stored(c);
      if (rec && rec.callId === rq.callId && rec.localTag === rq.to.params['tag']) {
        id = c;
        break;
      }
    }
    // RFC 6665 §4.1.2.4: a NOTIFY in no subscription of the cluster is refused.
    if (id === undefined) return tx.respond({ status: 481, reason: 'Subscription Does Not Exist' });
    const owner = await leases.ownerOf(name(id));
    let node = owner?.alive ? owner.node : undefined;
    if (node === undefined || node === bus.nodeId) {
      // The owner is dead (or none holds it): this node takes the dialog over first, then answers.
      const c = await leases.claim(name(id));
      if (c.ok) {
        await gateway.adopt(id);
        if (!gateway.handleNotifyHere(tx)) tx.respond({ status: 481, reason: 'Subscription Does Not Exist' });
        return;
      }
      node = c.owner;
    }
    const ref = randomBytes(8).toString('hex');
    const answer = new Promise<{ status: number; reason: string } | undefined>((resolve) => {
      const t = setTimeout(() => {
        waiting.delete(ref);
        resolve(undefined);
      }, ANSWER_MS);
      t.unref?.();
      waiting.set(ref, (status, reason) => {
        clearTimeout(t);
        waiting.delete(ref);
        resolve({ status, reason });
      });
    });
    await bus.publish(`node:${node}`, passedOn(ref, rq));
    const a = await answer;
    // No answer from the owner: nothing was accepted; the notifier may send it again.
    tx.respond(a ?? { status: 500, reason: 'Owner Did Not Answer', headers: [['Retry-After', '1']] });
  }

  gateway.strayNotify = (tx, ids) =>
    void owning(tx, ids).catch(() => {
      if (!tx.answered) tx.respond({ status: 500, reason: 'Server Internal Error', headers: [['Retry-After', '1']] });
    });
  const unlisten = bus.listen(`node:${bus.nodeId}`, (m, from) => {
    if (m.kind === 'upstream-notify-answer') {
      const a = Answer.safeParse(m);
      if (a.success) waiting.get(a.data.ref)?.(a.data.status, a.data.reason);
      return;
    }
    if (m.kind !== 'upstream-notify') return; // other kinds on this topic are not ours
    const n = PassedOn.safeParse(m);
    if (!n.success) return;
    const reply = (status: number, reason: string) => void bus.publish(`node:${from}`, { kind: 'upstream-notify-answer', ref: n.data.ref, status, reason }).catch(() => undefined);
    const here = gateway.handleNotifyHere({ request: received(n.data), respond: (spec) => reply(spec.status, spec.reason ?? '') });
    if (!here) reply(481, 'Subscription Does Not Exist');
  });
  return () => {
    gateway.strayNotify = undefined;
    unlisten();
  };
}
