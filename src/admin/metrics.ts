// Herald's Prometheus figures through prom-client: its default process metrics (CPU, memory, event
// loop lag, handles), the gauges read from Herald's state at scrape time, and what the core's hooks
// report as it happens (the stack's messages, the notifier's NOTIFYs and their answers, the store's
// batch writes). One registry per Herald, so two in one process (tests) do not collide.
import type { ImCounters } from '../im/relay.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StackObserver } from '../sip/stack.js';
import type { Protocol } from '../sip/message.js';
import type { SubscriptionRecord } from '../events/subscription.js';

/** The state the gauges read at each scrape. */
export interface MetricSources {
  hub: () => { resources: number; watchers: number };
  subscriptions: () => number;
  publications: () => number;
  listSubscriptions: () => number;
  /** Upstream subscriptions of the SIP gateway by phase (idle, subscribing, established, …). */
  upstreamPhases: () => Record<string, number>;
  /** The XMPP component connection's state, if there is a gateway. */
  xmppComponent: () => string | undefined;
  /** The stack's own running counts and the notifier's NOTIFYs sent (kept under their first names). */
  counters: () => { requestsIn: number; retransmissionsAbsorbed: number; malformed: number; notifiesSent: number; shed: number };
  /** The IM relay's counts (RFC 3428), when messaging is on. */
  im?: () => ImCounters | undefined;
  /** Bytes of free C heap given back to the system so far (limits.max_free_heap_bytes), if that is on. */
  freeMemoryReturned?: () => number;
  /** Times V8 was asked to compact its old space after a storm (limits.max_free_heap_bytes). */
  heapCompactions?: () => number;
}

/** A PUBLISH arrival older than this is no longer taken as the cause of a NOTIFY. */
const CAUSE_WINDOW_MS = 30_000;

/**
 * Methods counted under their own name; any other token a peer sends is counted as "other", so a
 * hostile peer cannot grow the label sets (and Herald's memory) without bound.
 */
const KNOWN_METHODS = ['other', 'ACK', 'BYE', 'CANCEL', 'INFO', 'INVITE', 'MESSAGE', 'NOTIFY', 'OPTIONS', 'PRACK', 'PUBLISH', 'REFER', 'REGISTER', 'SUBSCRIBE', 'UPDATE'];
const METHOD_INDEX = new Map(KNOWN_METHODS.map((m, i) => [m, i]));
const PROTOCOLS: readonly Protocol[] = ['UDP', 'TCP', 'TLS', 'WS'];
const PROTOCOL_INDEX: Record<Protocol, number> = { UDP: 0, TCP: 1, TLS: 2, WS: 3 };
type MessageLabel = 'direction' | 'kind' | 'method' | 'status' | 'transport';

/**
 * herald_sip_messages_total's label set as one number (no string built per message, issue 9):
 * direction, kind, method (index in KNOWN_METHODS), status (0: none; a status is three digits) and
 * transport, in mixed radix; messageLabels() reads them back at scrape time.
 */
function messageKey(dir: 'in' | 'out', kind: 'request' | 'response', method: string, status: number | undefined, protocol: Protocol): number {
  const m = METHOD_INDEX.get(method) ?? 0;
  return ((((dir === 'in' ? 0 : 1) * 2 + (kind === 'request' ? 0 : 1)) * 16 + m) * 1000 + ((status ?? 0) % 1000)) * 4 + PROTOCOL_INDEX[protocol];
}

function messageLabels(key: number): Record<MessageLabel, string> {
  const protocol = PROTOCOLS[key % 4]!;
  let k = Math.floor(key / 4);
  const status = k % 1000;
  k = Math.floor(k / 1000);
  const method = KNOWN_METHODS[k % 16]!;
  k = Math.floor(k / 16);
  return { direction: k >= 2 ? 'out' : 'in', kind: k % 2 === 0 ? 'request' : 'response', method, status: status === 0 ? '' : String(status), transport: protocol.toLowerCase() };
}

const answerLabels = (status: number): Record<'status', string> => ({ status: status < 0 ? 'timeout' : String(status) });

/**
 * A counter by label set for what happens per message: counted in plain numbers under a key the caller
 * builds (a number: nothing allocated per count), handed to prom-client at scrape time (a labelled
 * inc() hashes its labels on every call).
 */
class Tally<L extends string> {
  private readonly counts = new Map<number, { labels: Record<L, string>; n: number }>();

  constructor(name: string, help: string, labelNames: L[], registers: Registry[]) {
    const counts = this.counts;
    new Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const { labels, n } of counts.values()) this.inc(labels, n);
      },
    });
  }

  /** One more under `key`; `labelsOf` (one function, not a closure per call) is asked only the first time a key is seen. */
  add(key: number, labelsOf: (key: number) => Record<L, string>): void {
    const c = this.counts.get(key);
    if (c) c.n++;
    else this.counts.set(key, { labels: labelsOf(key), n: 1 });
  }
}

export class HeraldMetrics {
  readonly registry = new Registry();
  private readonly messages: Tally<MessageLabel>;
  private readonly notifyAnswers: Tally<'status'>;
  private readonly authFailures: Counter<'protocol' | 'reason'>;
  private readonly publishToNotify: Histogram;
  private readonly storeWrite: Histogram;
  /** When a PUBLISH for a presentity last arrived. */
  private readonly publishedAt = new Map<string, number>();

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'herald_' });
    this.messages = new Tally(
      'herald_sip_messages_total',
      'SIP requests and responses, by direction (in: received, out: sent), method, status and transport.',
      ['direction', 'kind', 'method', 'status', 'transport'],
      registers,
    );
    this.notifyAnswers = new Tally('herald_notify_answers_total', 'Answers to the NOTIFYs Herald sent, by status ("timeout": none).', ['status'], registers);
    this.authFailures = new Counter({
      name: 'herald_auth_failures_total',
      help: 'Credentials that did not pass, by protocol (sip, xcap, admin) and the reason of the auth-failure log line.',
      labelNames: ['protocol', 'reason'],
      registers,
    });
    this.publishToNotify = new Histogram({
      name: 'herald_publish_to_notify_seconds',
      help: 'From a PUBLISH arriving to each NOTIFY it causes leaving.',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.storeWrite = new Histogram({
      name: 'herald_store_write_seconds',
      help: 'Time to write one group-committed batch to the store.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({ name: `herald_${name}`, help, registers, collect() { this.set(read()); } });
    };
    gauge('hub_resources', 'Resources watched through the hub (one upstream watch each, however many watchers).', () => sources.hub().resources);
    gauge('hub_watchers', 'Watchers behind those watches (subscriptions, list members, Jabber watchers).', () => sources.hub().watchers);
    gauge('subscriptions', 'Subscription dialogs Herald is the notifier of.', sources.subscriptions);
    gauge('publications', 'Live publications (RFC 3903).', sources.publications);
    gauge('list_subscriptions', 'Resource list subscriptions (RFC 4662).', sources.listSubscriptions);
    const counter = (name: string, help: string, read: () => number): void => {
      new Counter({ name: `herald_${name}`, help, registers, collect() { this.reset(); this.inc(read()); } });
    };
    counter('notify_sent_total', 'NOTIFY requests sent.', () => sources.counters().notifiesSent);
    counter('sip_requests_in_total', 'SIP requests received (retransmissions excluded).', () => sources.counters().requestsIn);
    counter('sip_retransmissions_absorbed_total', 'Retransmitted requests answered from the transaction.', () => sources.counters().retransmissionsAbsorbed);
    counter('sip_malformed_total', 'Malformed SIP messages refused or dropped.', () => sources.counters().malformed);
    counter('sip_shed_total', 'Requests answered 503 by overload control.', () => sources.counters().shed);
    counter('free_memory_returned_bytes_total', 'Resident bytes of free C heap given back to the system after storms (malloc_trim).', () => sources.freeMemoryReturned?.() ?? 0);
    counter('heap_compactions_total', "Times V8 was asked to compact its old space at the next full GC (half-empty pages after a storm).", () => sources.heapCompactions?.() ?? 0);
    const im = (k: keyof ImCounters): (() => number) => () => sources.im?.()?.[k] ?? 0;
    counter('im_messages_total', 'MESSAGE requests received (SIP) or bridged in (XMPP).', im('received'));
    counter('im_delivered_total', 'Messages a recipient (or the next hop) answered 2xx.', im('delivered'));
    counter('im_blocked_total', "Messages refused by the recipient's IM rules (403).", im('blocked'));
    counter('im_polite_blocked_total', 'Messages dropped by polite-block (answered 202).', im('politeBlocked'));
    counter('im_failed_total', 'Messages answered with a failure (no contact, timeout, refused, too big ...).', im('failed'));
    counter('im_rate_limited_total', 'Messages refused because their sender sent too many.', im('rateLimited'));
    counter('im_bridged_out_total', 'Messages sent on to XMPP.', im('bridgedOut'));
    counter('im_bridged_in_total', 'Messages from XMPP delivered to SIP users.', im('bridgedIn'));
    new Gauge({
      name: 'herald_upstream_subscriptions',
      help: 'Subscriptions the SIP gateway holds at remote domains, by phase.',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        for (const [state, n] of Object.entries(sources.upstreamPhases())) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'herald_xmpp_component_up',
      help: 'The XMPP component connection: 1 online, 0 otherwise (absent without the gateway).',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const s = sources.xmppComponent();
        if (s !== undefined) this.set({ state: s }, s === 'online' ? 1 : 0);
      },
    });
  }

  /** The stack's hook: counts messages (SIP auth failures come from the authenticator). */
  readonly stackObserver: StackObserver = {
    message: (dir, kind, method, status, protocol) => {
      this.messages.add(messageKey(dir, kind, method, status, protocol), messageLabels);
    },
  };

  /** A PUBLISH for a presentity arrived (the publish handler's hook): the cause of the NOTIFYs that follow. */
  published(presentity: string): void {
    this.publishedAt.set(presentity, Date.now());
  }

  /** The notifier's hook; `previous`: when the subscription's NOTIFY before this one left (0: none). */
  readonly notifyObserver = {
    sent: (rec: SubscriptionRecord, previous: number): void => {
      if (rec.event !== 'presence') return;
      const published = this.publishedAt.get(rec.resource);
      if (published === undefined || published <= previous) return;
      const now = Date.now();
      if (now - published < CAUSE_WINDOW_MS) this.publishToNotify.observe((now - published) / 1000);
    },
    answered: (_rec: SubscriptionRecord, status: number | undefined): void => {
      this.notifyAnswers.add(status ?? -1, answerLabels);
    },
  };

  storeWritten(ms: number): void {
    this.storeWrite.observe(ms / 1000);
  }

  authFailure(protocol: 'sip' | 'xcap' | 'admin', reason: string): void {
    this.authFailures.inc({ protocol, reason });
  }

  /** Forgets PUBLISH arrivals too old to be a cause (bounded memory). */
  sweep(now = Date.now()): void {
    for (const [p, t] of this.publishedAt) if (now - t > CAUSE_WINDOW_MS) this.publishedAt.delete(p);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
