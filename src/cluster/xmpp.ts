// The XMPP gateway across nodes (gateways/xmpp/index.ts, XmppClusterLink): stanzas of nodes without the
// component connection go to the node that has it on the `xmpp` topic (every node with the gateway
// listens; only the one whose connection is online sends), and each Jabber contact's presence goes from
// that node to the nodes watching the contact on `res:<the contact's SIP address>`, the topic their
// presence watchers already listen on. Stanzas are small JSON trees, checked with zod on receipt.
import { z } from 'zod';
import type { Logger } from 'pino';
import type { XmppClusterLink } from '../../gateways/xmpp/index.js';
import type { XNode } from '../../gateways/xmpp/wire.js';
import type { RedisBus } from './bus.js';
import { resourceTopic } from './feed.js';
import type { RedisLink } from './redis.js';

export const XMPP_TOPIC = 'xmpp';
/** Depth of a stanza tree accepted from the bus (a presence stanza needs three or four). */
const MAX_DEPTH = 8;

const Stanza: z.ZodType<XNode> = z.lazy(() =>
  z.object({
    name: z.string().min(1).max(200),
    attrs: z.record(z.string(), z.string()),
    children: z.array(z.union([z.string(), Stanza])).max(200),
  }),
);
const Forwarded = z.object({ kind: z.literal('stanza'), stanza: Stanza, queue: z.boolean() });
const Shared = z.object({ kind: z.literal('xmpp-presence'), stanza: Stanza });

function depth(n: XNode | string): number {
  return typeof n === 'string' ? 0 : 1 + Math.max(0, ...n.children.map(depth));
}

export function xmppClusterLink(bus: RedisBus, link: RedisLink, log: Logger): XmppClusterLink {
  const lost = (e: unknown): void => log.debug({ err: (e as Error).message }, 'cluster: xmpp stanza not relayed');
  const stanzaOf = <T extends { stanza: XNode }>(schema: z.ZodType<T>, m: unknown): T | undefined => {
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
