// The XMPP gateway across nodes (gateways/xmpp/index.ts, XmppClusterLink): stanzas of nodes without the
// component connection go to the node that has it on the `xmpp` topic (every node with the gateway
// listens; only the one whose connection is online sends), and each Jabber contact's presence goes from
// that node to the nodes watching the contact on `res:<the contact's SIP address>`, the topic their
// presence watchers already listen on. Stanzas are small JSON trees, checked with zod on receipt.
import { z } from 'zod';
import type { Logger } from 'pino';
import type { RedisBus } from './bus.js';
import { resourceTopic } from './feed.js';
import type { RedisLink } from './redis.js';

/**
 * A stanza as the gateway's wire module reads it (gateways/xmpp/wire.ts StanzaTree has this shape): the core
 * names its own type so that src/ imports nothing from gateways/ but in the wiring.
 */
export interface StanzaTree {
  name: string;
  attrs: Record<string, string>;
  children: (StanzaTree | string)[];
}

/**
 * The gateway on a cluster's node (implemented below; the XMPP gateway, gateways/xmpp/index.ts, takes it as a seam). One node holds the component
 * connection (the XMPP server accepts one per component domain; its lease decides which node); SIP
 * watchers of Jabber contacts may be held by any node. A node whose connection is not online forwards
 * its stanzas to the one that is, and that node shares each contact's presence with the nodes watching
 * the contact (`res:<the contact's SIP address>`).
 */
export interface XmppClusterLink {
  /** A stanza this node cannot send itself: the node whose component connection is online sends it. */
  forward(stanza: StanzaTree, queue: boolean): void;
  /** Stanzas forwarded by other nodes (sent here when this node's connection is online), and their call to probe again (a new holder is online). */
  onForwarded(send: (stanza: StanzaTree, queue: boolean) => void, resend: () => void): void;
  /** This node's component connection came online: the other nodes probe their contacts through it. */
  online(): void;
  /** A presence stanza from a Jabber contact, for the nodes watching it. */
  share(contactSip: string, stanza: StanzaTree): void;
  /** This node watches a Jabber contact: `receive` gets the stanzas the connection's node shares. */
  hold(contactSip: string, receive: (stanza: StanzaTree) => void): () => void;
}

export const XMPP_TOPIC = 'xmpp';
/** Depth of a stanza tree accepted from the bus (a presence stanza needs three or four). */
const MAX_DEPTH = 8;

const Stanza: z.ZodType<StanzaTree> = z.lazy(() =>
  z.object({
    name: z.string().min(1).max(200),
    attrs: z.record(z.string(), z.string()),
    children: z.array(z.union([z.string(), Stanza])).max(200),
  }),
);
const Forwarded = z.object({ kind: z.literal('stanza'), stanza: Stanza, queue: z.boolean() });
const Shared = z.object({ kind: z.literal('xmpp-presence'), stanza: Stanza });

function depth(n: StanzaTree | string): number {
  return typeof n === 'string' ? 0 : 1 + Math.max(0, ...n.children.map(depth));
}

export function xmppClusterLink(bus: RedisBus, link: RedisLink, log: Logger): XmppClusterLink {
  const lost = (e: unknown): void => log.debug({ err: (e as Error).message }, 'cluster: xmpp stanza not relayed');
  const stanzaOf = <T extends { stanza: StanzaTree }>(schema: z.ZodType<T>, m: unknown): T | undefined => {
    const r = schema.safeParse(m);
    return r.success && depth(r.data.stanza) <= MAX_DEPTH ? r.data : undefined;
  };
  return {
    forward: (stanza, queue) => {
      bus.publish(XMPP_TOPIC, { kind: 'stanza', stanza, queue }).catch(lost);
    },
    onForwarded: (send, resend) => {
      bus.listen(XMPP_TOPIC, (m) => {
        if (m.kind === 'online') return resend();
        const f = stanzaOf(Forwarded, m);
        if (f) send(f.stanza, f.queue);
      });
      // After an outage every node probes its contacts again through whichever node is online.
      link.on('up', resend);
    },
    online: () => {
      bus.publish(XMPP_TOPIC, { kind: 'online' }).catch(lost);
    },
    share: (contactSip, stanza) => {
      bus.publish(resourceTopic(contactSip), { kind: 'xmpp-presence', stanza }).catch(lost);
    },
    hold: (contactSip, receive) =>
      bus.listen(resourceTopic(contactSip), (m) => {
        const s = stanzaOf(Shared, m);
        if (s) receive(s.stanza);
      }),
  };
}
