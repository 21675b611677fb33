// A real Jabber user for the interop suite: an @xmpp/client c2s session with a bounded wait for stanzas.
import { client, type XmppClient } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { setTimeout as sleep } from 'node:timers/promises';
import { el, fromLtx, toLtx, type XNode } from '../../../gateways/xmpp/wire.js';

export class Jabber {
  readonly received: XNode[] = [];
  private waiters: { pred: (n: XNode) => boolean; resolve: (n: XNode) => void }[] = [];
  private readonly c: XmppClient;

  constructor(service: string, readonly user: string, password: string, readonly resource = 'test') {
    this.c = client({ service, domain: 'xmpp.test', username: user, password, resource });
    this.c.reconnect.stop();
    this.c.on('error', () => undefined);
    this.c.on('stanza', (e: Element) => {
      const n = fromLtx(e);
      const w = this.waiters.find((x) => x.pred(n));
      if (w) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve(n);
      } else this.received.push(n);
    });
  }

  get jid(): string {
    return `${this.user}@xmpp.test`;
  }

  async start(): Promise<void> {
    await this.c.start();
  }

  async stop(): Promise<void> {
    try {
      await this.c.stop();
    } catch {
      // already down (e.g. Prosody stopped under it)
    }
  }

  send(n: XNode): Promise<void> {
    return this.c.send(toLtx(n));
  }

  presence(to: string | undefined, type?: string, show?: string, status?: string): Promise<void> {
    return this.send(el('presence', { to, type }, show !== undefined ? el('show', {}, show) : undefined, status !== undefined ? el('status', {}, status) : undefined));
  }

  async iq(n: XNode): Promise<XNode> {
    return fromLtx(await this.c.iqCaller.request(toLtx(n), 5000));
  }

  /** The first stanza (already received or arriving within `ms`) that matches. */
  next(pred: (n: XNode) => boolean, ms = 5000): Promise<XNode> {
    const i = this.received.findIndex(pred);
    if (i !== -1) return Promise.resolve(this.received.splice(i, 1)[0] as XNode);
    return new Promise<XNode>((resolve, reject) => {
      const w = { pred, resolve: (n: XNode) => { clearTimeout(t); resolve(n); } };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`${this.user}: no matching stanza within ${ms} ms; got ${this.received.map((r) => JSON.stringify(r)).join(' ')}`));
      }, ms);
      this.waiters.push(w);
    });
  }

  /** Whether a matching stanza arrives within `ms` (for "nothing is sent" checks). */
  async none(pred: (n: XNode) => boolean, ms: number): Promise<boolean> {
    await sleep(ms);
    return !this.received.some(pred);
  }
}

export const isPresence = (from: string, type?: string) => (n: XNode): boolean =>
  n.name === 'presence' && (n.attrs['from'] ?? '').split('/')[0] === from && n.attrs['type'] === type;
