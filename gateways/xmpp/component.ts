// The XEP-0114 component connection, and the authorizations the gateway must keep itself.
//
// XEP-0114 §3: the server keeps no roster for a component and answers no probes for it, so every
// presence authorization the gateway holds (either way) is persisted here and survives restarts of
// Herald and of the XMPP server alike.
import { component as createComponent, type XmppEntity } from '@xmpp/component';
import type { Element } from '@xmpp/xml';
import type { Logger } from 'pino';
import type { Collection } from '../../src/store/store.js';
import { fromLtx, toLtx, type XNode } from './wire.js';
import { withTimeout } from '../../src/util/timeout.js';

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

export type ConnectionState = 'stopped' | 'connecting' | 'online' | 'offline';

/** Factory seam for tests: anything with xmpp.js's entity surface. */
export type EntityFactory = (opts: { service: string; domain: string; password: string }) => XmppEntity;

export interface ComponentOptions {
  service: string;
  domain: string;
  secret: string;
  backoff: Backoff;
  log: Logger;
  /** Most subscription-control stanzas kept while offline (sent on reconnect); presence is re-sent instead. */
  maxQueued?: number;
  entityFactory?: EntityFactory;
}

/**
 * One component connection with reconnection: exponential backoff with jitter between attempts (a
 * restarting XMPP server is not hammered), one log line per state change (not per attempt), and
 * `onOnline` listeners called after every (re)connection so the gateway re-sends what the XMPP side
 * lost (XEP-0114 gives a component no session state to resume).
 */
export class ComponentConnection {
  private entity: XmppEntity | undefined;
  private stateValue: ConnectionState = 'stopped';
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private readonly stanzaListeners: ((s: XNode) => void)[] = [];
  private readonly onlineListeners: (() => void)[] = [];
  private queue: XNode[] = [];
  private firstOnline: (() => void) | undefined;

  constructor(private readonly opts: ComponentOptions) {}

  get state(): ConnectionState {
    return this.stateValue;
  }

  /** A method, not a field read, so that TypeScript does not narrow it across awaits. */
  private isStopped(): boolean {
    return this.stateValue === 'stopped';
  }

  onStanza(fn: (s: XNode) => void): void {
    this.stanzaListeners.push(fn);
  }

  onOnline(fn: () => void): void {
    this.onlineListeners.push(fn);
  }

  /**
   * Starts connecting; resolves once online or after the first failed attempt (Herald starts either
   * way; the connection keeps retrying in the background).
   */
  start(): Promise<void> {
    if (this.stateValue !== 'stopped') return Promise.resolve();
    const first = new Promise<void>((resolve) => {
      this.firstOnline = resolve;
    });
    this.setState('connecting', {});
    void this.connect();
    return first;
  }

  async stop(): Promise<void> {
    this.setState('stopped', {});
    clearTimeout(this.timer);
    this.timer = undefined;
    const e = this.entity;
    this.entity = undefined;
    if (e) await this.dispose(e);
    this.firstOnline?.();
    this.firstOnline = undefined;
  }

  /**
   * Sends a stanza (its `from` must be in the component's domain, XEP-0114 §3). When offline, a
   * stanza marked `queue` (subscription control, which XMPP would not otherwise learn) waits for the
   * next connection; anything else is dropped, to be re-sent from state on reconnect.
   */
  send(stanza: XNode, opts: { queue?: boolean } = {}): void {
    const e = this.entity;
    if (this.stateValue !== 'online' || !e) {
      if (opts.queue && this.stateValue !== 'stopped' && this.queue.length < (this.opts.maxQueued ?? 1000)) this.queue.push(stanza);
      return;
    }
    e.send(toLtx(stanza)).catch((err: unknown) => {
      this.opts.log.debug({ err: String(err) }, 'xmpp component send failed');
      if (opts.queue && this.queue.length < (this.opts.maxQueued ?? 1000)) this.queue.push(stanza);
    });
  }

  private setState(s: ConnectionState, fields: Record<string, unknown>): void {
    if (s === this.stateValue) return;
    this.stateValue = s;
    const level = s === 'offline' ? 'warn' : 'info';
    this.opts.log[level]({ ...fields, service: this.opts.service, component: this.opts.domain }, `xmpp component ${s}`);
  }

  private async connect(): Promise<void> {
    this.timer = undefined;
    if (this.stateValue === 'stopped') return;
    this.attempt++;
    const factory = this.opts.entityFactory ?? createComponent;
    const e = factory({ service: this.opts.service, domain: this.opts.domain, password: this.opts.secret });
    // Herald's own backoff replaces xmpp.js's fixed one-second reconnect.
    e.reconnect.stop();
    let lastError: Error | undefined;
    e.on('error', (err) => {
      lastError = err;
    });
    e.on('stanza', (el: Element) => {
      if (this.entity !== e) return;
      const node = fromLtx(el);
      for (const l of this.stanzaListeners) {
        try {
          l(node);
        } catch (err) {
          this.opts.log.error({ err: String(err) }, 'xmpp stanza handler failed');
        }
      }
    });
    e.on('status', (status) => {
      if (status === 'disconnect' && this.entity === e) {
        this.entity = undefined;
        void this.dispose(e);
        this.lost(lastError);
      }
    });
    this.opts.log.debug({ attempt: this.attempt }, 'xmpp component connecting');
    try {
      await withTimeout(e.start(), 15_000);
    } catch (err) {
      if (this.entity !== e) {
        // Failed before it was ever online.
        void this.dispose(e);
        this.lost((err as Error) ?? lastError);
      }
      return;
    }
    if (this.isStopped()) {
      void this.dispose(e);
      return;
    }
    this.entity = e;
    this.attempt = 0;
    this.setState('online', {});
    const queued = this.queue;
    this.queue = [];
    for (const s of queued) this.send(s, { queue: true });
    for (const l of this.onlineListeners) {
      try {
        l();
      } catch (err) {
        this.opts.log.error({ err: String(err) }, 'xmpp reconnect handler failed');
      }
    }
    this.firstOnline?.();
    this.firstOnline = undefined;
  }

  private lost(err: Error | undefined): void {
    if (this.stateValue === 'stopped') return;
    this.setState('offline', { err: err?.message });
    this.firstOnline?.();
    this.firstOnline = undefined;
    if (this.timer) return;
    const { initialMs, maxMs } = this.opts.backoff;
    const base = Math.min(maxMs, initialMs * 2 ** Math.min(20, Math.max(0, this.attempt - 1)));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.opts.log.debug({ attempt: this.attempt, delayMs: delay }, 'xmpp component reconnect scheduled');
    this.timer = setTimeout(() => void this.connect(), delay);
    this.timer.unref();
  }

  private async dispose(e: XmppEntity): Promise<void> {
    e.removeAllListeners('stanza');
    e.removeAllListeners('status');
    // Keep an error listener: a late socket error must not become an unhandled 'error' event.
    e.removeAllListeners('error');
    e.on('error', () => undefined);
    try {
      await withTimeout(e.stop(), 3000);
    } catch {
      // already gone
    }
  }
}


// ---------------------------------------------------------------------------------------------
// Persisted authorizations
// ---------------------------------------------------------------------------------------------

/**
 * One presence authorization between a SIP user and a Jabber user.
 * - 'out': a SIP watcher (`sip`) subscribed to a Jabber contact (`jid`) through the gateway; the
 *   contact's server holds the authorization, the gateway remembers it so that it probes (rather than
 *   re-subscribes) after a restart.
 * - 'in': a Jabber watcher (`jid`) subscribed to a SIP user (`sip`); the gateway is that SIP user's
 *   XMPP server (XEP-0114 §3), so this record IS the authorization: probes are answered from it.
 */
export interface AuthorizationRecord {
  direction: 'out' | 'in';
  sip: string;
  jid: string;
  state: 'pending' | 'active';
  updatedAt: number;
}

export function authorizationKey(direction: 'out' | 'in', sip: string, jid: string): string {
  return `${direction}\n${sip}\n${jid}`;
}

export class AuthorizationStore {
  private readonly records = new Map<string, AuthorizationRecord>();

  constructor(private readonly collection: Collection<AuthorizationRecord>) {}

  async load(): Promise<number> {
    for (const [k, v] of await this.collection.all()) this.records.set(k, v);
    return this.records.size;
  }

  get(direction: 'out' | 'in', sip: string, jid: string): AuthorizationRecord | undefined {
    return this.records.get(authorizationKey(direction, sip, jid));
  }

  all(direction: 'out' | 'in'): AuthorizationRecord[] {
    return [...this.records.values()].filter((r) => r.direction === direction);
  }

  put(rec: AuthorizationRecord): Promise<void> {
    const k = authorizationKey(rec.direction, rec.sip, rec.jid);
    const old = this.records.get(k);
    if (old && old.state === rec.state) return Promise.resolve();
    this.records.set(k, rec);
    return this.collection.put(k, rec);
  }

  delete(direction: 'out' | 'in', sip: string, jid: string): Promise<void> {
    const k = authorizationKey(direction, sip, jid);
    if (!this.records.delete(k)) return Promise.resolve();
    return this.collection.delete(k);
  }
}

/** XEP-0030 disco#info answer for the component: a SIP gateway (XEP-0100 §4 identity). */
export const DISCO_INFO = 'http://jabber.org/protocol/disco#info';
