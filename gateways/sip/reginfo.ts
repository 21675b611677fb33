// Registration state as a presence source (the SER PA and repro show registered-but-silent users as
// open): Herald subscribes to the `reg` event package (RFC 3680) for local addresses of record at the
// operator's registrar and reports whether each is registered. The PA composes it with publications.
import type { Logger } from 'pino';
import { childElements, parseXml, textOf, type XmlElement } from '../../src/formats/xml.js';
import { mediaType } from '../../src/formats/content-types.js';
import { aorOf } from '../../src/formats/uri.js';
import type { ServerTx, SipStack } from '../../src/sip/stack.js';
import type { Store } from '../../src/store/store.js';
import { Subscriber, type SubscriberRecord, type SubscriptionNotice } from '../../src/events/subscriber.js';
import type { RegSourceConfig } from './config.js';

export const REGINFO_NS = 'urn:ietf:params:xml:ns:reginfo';
export const CT_REGINFO = 'application/reginfo+xml';
const REG = 'reg';

/** One registration of a reginfo document (RFC 3680 §5.3.1): the AOR and its state. */
export interface RegInfoRegistration {
  aor: string;
  /** init: no contacts yet; active: at least one contact bound; terminated: none any more. */
  state: 'init' | 'active' | 'terminated';
  /** Contacts whose state is active. */
  activeContacts: number;
  /** The contacts listed (RFC 3680 §5.3.1.2): id, the contact URI and its state. */
  contacts: RegInfoContact[];
}

export interface RegInfoContact {
  id: string;
  uri: string;
  state: 'active' | 'terminated';
}

export interface RegInfoDocument {
  version: number;
  state: 'full' | 'partial';
  registrations: RegInfoRegistration[];
}

/** Parses application/reginfo+xml (RFC 3680 §5.3). Throws on anything that is not reginfo. */
export function parseRegInfo(text: string): RegInfoDocument {
  const root = parseXml(text);
  if (root.ns !== REGINFO_NS || root.name !== 'reginfo') throw new Error('root element is not reginfo');
  const version = Number(root.attrs['version']);
  const state = root.attrs['state'];
  if (!Number.isInteger(version) || version < 0) throw new Error('reginfo version missing or bad');
  if (state !== 'full' && state !== 'partial') throw new Error('reginfo state must be full or partial');
  const registrations: RegInfoRegistration[] = [];
  for (const r of childElements(root, REGINFO_NS, 'registration')) {
    const aor = aorOf(r.attrs['aor'] ?? '');
    const st = r.attrs['state'];
    if (!aor || (st !== 'init' && st !== 'active' && st !== 'terminated')) continue;
    const contacts = childElements(r, REGINFO_NS, 'contact').flatMap((c: XmlElement): RegInfoContact[] => {
      const uriEl = childElements(c, REGINFO_NS, 'uri')[0];
      const uri = uriEl ? textOf(uriEl).trim() : '';
      const cs = c.attrs['state'];
      return uri !== '' && (cs === 'active' || cs === 'terminated') ? [{ id: c.attrs['id'] ?? uri, uri, state: cs }] : [];
    });
    registrations.push({ aor, state: st, activeContacts: contacts.filter((c) => c.state === 'active').length, contacts });
  }
  return { version, state, registrations };
}

/**
 * Whether a reginfo document says the AOR is registered (RFC 3680 §5.1, §5.3): a registration that is
 * init or terminated (Kamailio's expiry and Expires: 0 both send `<registration state="terminated">`)
 * is not; an active one is, in full state only while it lists an active contact (contacts that are
 * terminated, event expired/unregistered/deactivated/..., do not count). Partial state lists only the
 * contacts that changed, so there the registration's own state decides. undefined: no change (a
 * partial document without the AOR); a full document without it means no bindings.
 */
export function isRegistered(doc: RegInfoDocument, aor: string): boolean | undefined {
  const mine = doc.registrations.find((r) => r.aor === aor);
  if (!mine) return doc.state === 'full' ? false : undefined;
  if (mine.state !== 'active') return false;
  return doc.state === 'partial' || mine.activeContacts > 0;
}

export type RegListener = (aor: string, registered: boolean | undefined) => void;

export interface RegSource {
  /**
   * Watches an AOR's registration while the returned function is not called (on-demand mode: the PA
   * calls it when somebody watches a local presentity). Counted: several watches, one subscription.
   */
  watch(aor: string): () => void;
  /** true: registered; false: not registered; undefined: not known (not watched, not yet told, or lost). */
  isRegistered(aor: string): boolean | undefined;
  /**
   * The contact URIs bound to the AOR as the registrar last reported them (RFC 3680 §5.3.1.2), for
   * delivering a request to the user's devices; undefined while not known. Resolves once the state is
   * known or after `waitMs` (the AOR must be watched, see watch()).
   */
  contacts(aor: string, waitMs?: number): Promise<readonly string[] | undefined>;
  /** Every change of an AOR's registration state (undefined: no longer known). Returns an unsubscribe. */
  onChange(listener: RegListener): () => void;
  /** Takes NOTIFYs of the reg subscriptions (and stray `Event: reg` NOTIFYs, 481). */
  handleNotify(tx: ServerTx): boolean;
  /** Loads persisted reg dialogs (kept in-dialog) and subscribes for the configured AORs. */
  restore(): Promise<void>;
  stop(): Promise<void>;
  stats(): { subscriptions: number; registered: number };
}

export interface RegSourceDeps {
  stack: SipStack;
  store: Store;
  log: Logger;
  config: RegSourceConfig;
  /** The From of reg SUBSCRIBEs: the gateway's identity (the registrar must allow it, RFC 3680 §6). */
  identity: string;
  /** Backoff bounds (ms) and refresh fraction, shared with the presence gateway's settings. */
  refreshFraction: number;
  minRetryMs: number;
  maxRetryMs: number;
}

export function createRegSource(deps: RegSourceDeps): RegSource {
  const { config, log } = deps;
  const subscriber = new Subscriber(
    deps.stack,
    deps.store.collection<SubscriberRecord>('gateway-reg'),
    { refreshFraction: deps.refreshFraction, minRetryMs: deps.minRetryMs, maxRetryMs: deps.maxRetryMs },
    log,
  );
  const state = new Map<string, boolean | undefined>();
  const counts = new Map<string, number>();
  const listeners = new Set<RegListener>();
  const pinned = new Set((config.aors ?? []).map((a) => aorOf(a)).filter((a): a is string => !!a));

  // Bindings per AOR: contact id → URI, active ones only. Full state replaces, partial state amends.
  const bindings = new Map<string, Map<string, string>>();
  const waiters = new Map<string, Set<() => void>>();

  const set = (aor: string, v: boolean | undefined): void => {
    if (v !== true) bindings.delete(aor);
    const w = waiters.get(aor);
    if (w && v !== undefined) {
      waiters.delete(aor);
      for (const f of w) f();
    }
    if (state.get(aor) === v && state.has(aor)) return;
    state.set(aor, v);
    for (const l of listeners) l(aor, v);
  };

  const bind = (aor: string, doc: RegInfoDocument): void => {
    const mine = doc.registrations.find((r) => r.aor === aor);
    const b = doc.state === 'full' || !bindings.has(aor) ? new Map<string, string>() : bindings.get(aor)!;
    if (doc.state === 'partial' && !mine) return;
    for (const c of mine?.state === 'active' ? mine.contacts : []) {
      if (c.state === 'active') b.set(c.id, c.uri);
      else b.delete(c.id);
    }
    bindings.set(aor, b);
  };

  const onNotice = (aor: string, n: SubscriptionNotice): void => {
    if (n.kind === 'stale' || n.kind === 'terminated') {
      if (n.kind === 'terminated') log.warn({ aor, reason: n.reason, status: n.status }, 'reg subscription refused or ended');
      set(aor, undefined);
      return;
    }
    if (n.kind === 'notify' && n.state === 'pending') return;
    if (n.body === undefined || n.body.trim() === '') {
      // Kamailio's presence_reginfo answers with no body while nothing was published for the AOR
      // (RFC 3680 wants a full-state document; an empty one means the same: no bindings).
      set(aor, false);
      return;
    }
    if (mediaType(n.contentType) !== CT_REGINFO) {
      log.warn({ aor, contentType: n.contentType }, 'reg NOTIFY without reginfo body');
      return;
    }
    let doc: RegInfoDocument;
    try {
      doc = parseRegInfo(n.body);
    } catch (e) {
      log.warn({ aor, err: (e as Error).message }, 'reginfo not understood');
      return;
    }
    // No version ordering here: Kamailio's presence_reginfo sends version="0" in every document.
    const registered = isRegistered(doc, aor);
    if (registered) bind(aor, doc);
    if (registered !== undefined) set(aor, registered);
  };

  const specFor = (aor: string) => ({
    id: `${REG}|${aor}`,
    target: aor,
    from: deps.identity,
    event: REG,
    accept: [CT_REGINFO],
    expires: config.expires,
    proxy: config.registrar,
    peer: aorOf(aor)?.split('@')[1] ?? '',
  });

  const wanted = (aor: string): boolean => pinned.has(aor) || (counts.get(aor) ?? 0) > 0;

  const start = (aor: string): void => {
    if (!config.enabled || subscriber.get(`${REG}|${aor}`)) return;
    subscriber.subscribe(specFor(aor), (n) => onNotice(aor, n));
  };

  return {
    watch(aor0: string): () => void {
      const aor = aorOf(aor0) ?? aor0;
      if (!config.enabled || (!config.on_demand && !pinned.has(aor))) return () => undefined;
      counts.set(aor, (counts.get(aor) ?? 0) + 1);
      start(aor);
      let done = false;
      return () => {
        if (done) return;
        done = true;
        const c = (counts.get(aor) ?? 1) - 1;
        if (c > 0) {
          counts.set(aor, c);
          return;
        }
        counts.delete(aor);
        if (!wanted(aor)) {
          void subscriber.get(`${REG}|${aor}`)?.stop();
          state.delete(aor);
        }
      };
    },
    isRegistered: (aor) => state.get(aorOf(aor) ?? aor),
    async contacts(aor0: string, waitMs = 0): Promise<readonly string[] | undefined> {
      const aor = aorOf(aor0) ?? aor0;
      if (state.get(aor) === undefined && waitMs > 0 && subscriber.get(`${REG}|${aor}`)) {
        await new Promise<void>((resolve) => {
          let w = waiters.get(aor);
          if (!w) waiters.set(aor, (w = new Set()));
          const done = (): void => {
            clearTimeout(t);
            w.delete(done);
            if (w.size === 0 && waiters.get(aor) === w) waiters.delete(aor);
            resolve();
          };
          const t = setTimeout(done, waitMs);
          w.add(done);
        });
      }
      const v = state.get(aor);
      if (v === undefined) return undefined;
      return v ? [...(bindings.get(aor)?.values() ?? [])] : [];
    },
    onChange(l: RegListener): () => void {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    handleNotify(tx: ServerTx): boolean {
      if (subscriber.handleNotify(tx)) return true;
      const ev = tx.request.headers.get('event')?.split(';')[0]?.trim().toLowerCase();
      if (tx.request.method !== 'NOTIFY' || ev !== REG) return false;
      tx.respond({ status: 481, reason: 'Subscription Does Not Exist' });
      return true;
    },
    async restore(): Promise<void> {
      if (!config.enabled) return;
      // Restored on-demand dialogs are kept for now; a watch claims them, the rest stay pinned until
      // their owner's presentity watch returns (the notifier restores those just after).
      const r = await subscriber.restore((spec) => {
        const aor = spec.target;
        if (!spec.id.startsWith(`${REG}|`) || (!pinned.has(aor) && !config.on_demand)) return undefined;
        return (n) => onNotice(aor, n);
      });
      for (const aor of pinned) start(aor);
      log.info(r, 'reg source: subscriptions restored');
    },
    async stop(): Promise<void> {
      await subscriber.stop();
    },
    stats() {
      let registered = 0;
      for (const v of state.values()) if (v) registered++;
      return { subscriptions: subscriber.size, registered };
    },
  };
}
