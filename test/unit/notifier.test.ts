// The RFC 6665 notifier's subscription state machine without sockets: a fake stack records NOTIFYs and
// answers them as each test wants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Notifier, type DialogOwnership } from '../../src/events/notifier.js';
import type { EventPackage, NotifyContent, SubscriptionRecord, TerminationReason } from '../../src/events/subscription.js';
import { RequestTemplate, decode } from '../../src/sip/codec.js';
import type { HeaderList, OutgoingRequest, SipRequest, SipResponse } from '../../src/sip/message.js';
import type { ResponseSpec } from '../../src/sip/codec.js';
import type { DialogRequest, PreparedRequest, ServerTx, SipStack } from '../../src/sip/stack.js';
import { Store } from '../../src/store/store.js';
import { silentLogger } from '../../src/log.js';

function subscribeRequest(extra: string[] = [], toTag?: string, cseq = 1, callId = 'call-1'): SipRequest {
  const head = [
    'SUBSCRIBE sip:alice@example.test SIP/2.0',
    'Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKtest' + cseq,
    'From: <sip:bob@example.test>;tag=bobtag',
    `To: <sip:alice@example.test>${toTag ? `;tag=${toTag}` : ''}`,
    `Call-ID: ${callId}`,
    `CSeq: ${cseq} SUBSCRIBE`,
    'Contact: <sip:bob@127.0.0.1:5099>',
    'Event: presence',
    ...extra,
    'Content-Length: 0',
  ].join('\r\n');
  const d = decode(Buffer.from(head), Buffer.alloc(0), { protocol: 'UDP', address: '127.0.0.1', port: 5099 });
  assert.equal(d.kind, 'request');
  return (d as { request: SipRequest }).request;
}

function tx(request: SipRequest): ServerTx & { answers: ResponseSpec[] } {
  const answers: ResponseSpec[] = [];
  return { request, answers, get answered() { return answers.some((a) => a.status >= 200); }, respond: (s) => void answers.push(s) };
}

/** A fake stack: NOTIFYs sent through prepare/sendPrepared are recorded as whole requests. */
function fakeStack(sent: OutgoingRequest[], answer: (r: OutgoingRequest) => Promise<number | undefined>): SipStack {
  const prepared = new WeakMap<PreparedRequest, DialogRequest>();
  return {
    prepare: (r: DialogRequest) => {
      const p: PreparedRequest = { method: r.method, uri: r.uri, route: r.route, template: new RequestTemplate(r.method, r.uri, '') };
      prepared.set(p, r);
      return p;
    },
    sendPrepared: (p: PreparedRequest, cseq: number, more: string, body: Buffer | undefined, contentType: string | undefined, _flow: unknown, done: (s: number | undefined) => void) => {
      const r = prepared.get(p)!;
      // The per-request lines as a header list ("Name: value", each CRLF-ended).
      const headers: HeaderList = more.split('\r\n').filter((l) => l !== '').map((l): [string, string] => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]);
      const req: OutgoingRequest = { ...r, cseq, headers: [...(r.headers ?? []), ...headers], ...(body ? { body: body.toString('utf8'), contentType } : {}) };
      sent.push(req);
      void answer(req).then(done);
    },
    contactUri: () => 'sip:127.0.0.1:5060',
  } as unknown as SipStack;
}

function harness(ownership?: DialogOwnership) {
  const sent: OutgoingRequest[] = [];
  let answer: (r: OutgoingRequest) => Promise<SipResponse | undefined> = async () => ({ status: 200 } as SipResponse);
  const stack = fakeStack(sent, (r) => answer(r).then((a) => a?.status));
  const store = Store.open('memory://', silentLogger).collection<SubscriptionRecord>('subscription');
  const n = new Notifier(stack, store, { minExpires: 10, defaultExpires: 3600, maxExpires: 7200, commonHeaders: () => [], ...(ownership ? { ownership } : {}) }, silentLogger);
  let body = 'v1';
  let changed: () => void = () => undefined;
  const closed: (TerminationReason | undefined)[] = [];
  const pkg: EventPackage = {
    event: 'presence',
    admit: (ctx) => {
      changed = ctx.changed;
      return {
        ok: true,
        contentType: 'text/plain',
        binding: { content: (): NotifyContent => ({ state: 'active', body, contentType: 'text/plain', tag: body }), currentTag: () => body, close: (r) => void closed.push(r) },
      };
    },
  };
  n.register(pkg);
  return {
    n, sent, store, closed,
    setAnswer: (f: typeof answer) => (answer = f),
    setBody: (b: string) => (body = b),
    change: () => changed(),
  };
}

const header = (r: OutgoingRequest, name: string) => r.headers?.find(([n]) => n === name)?.[1];
const tick = () => new Promise((r) => setImmediate(r));

test('SUBSCRIBE: 200 with a To tag and the granted Expires, then NOTIFY CSeq 1 active', async () => {
  const h = harness();
  const t = tx(subscribeRequest(['Expires: 99999']));
  await h.n.handleSubscribe(t);
  assert.equal(t.answers[0]!.status, 200);
  assert.ok(t.answers[0]!.toTag);
  assert.equal(t.answers[0]!.headers!.find(([n]) => n === 'Expires')![1], '7200', 'lowered to the maximum');
  await tick();
  assert.equal(h.sent.length, 1);
  assert.equal(h.sent[0]!.cseq, 1);
  assert.match(header(h.sent[0]!, 'Subscription-State')!, /^active;expires=720\d$/);
  assert.equal(h.sent[0]!.from.params['tag'], t.answers[0]!.toTag);
  assert.equal(h.sent[0]!.to.params['tag'], 'bobtag');
});

test('the CSeq of a NOTIFY is durable before the NOTIFY is sent', async () => {
  const h = harness();
  let storedAtSend: number | undefined;
  h.setAnswer(async (r) => {
    // What a restart would go on from: above every CSeq reserved, so never this one again.
    const stored = (await h.store.all())[0]?.[1];
    storedAtSend = Math.max(stored?.localCseq ?? 0, stored?.cseqReserved ?? 0);
    assert.ok(storedAtSend >= r.cseq, `stored ${storedAtSend} covers CSeq ${r.cseq}`);
    return { status: 200 } as SipResponse;
  });
  await h.n.handleSubscribe(tx(subscribeRequest()));
  await tick();
  await tick();
  assert.ok(storedAtSend !== undefined && storedAtSend >= 1);
});

test('one NOTIFY in flight; changes meanwhile are coalesced into one more with the latest state', async () => {
  const h = harness();
  const pending: ((r: SipResponse | undefined) => void)[] = [];
  h.setAnswer(() => new Promise((r) => pending.push(r)));
  await h.n.handleSubscribe(tx(subscribeRequest()));
  await tick();
  assert.equal(h.sent.length, 1);
  for (const b of ['v2', 'v3', 'v4']) {
    h.setBody(b);
    h.change();
  }
  await tick();
  assert.equal(h.sent.length, 1, 'nothing more while the first is unanswered');
  pending.shift()!({ status: 200 } as SipResponse);
  await tick();
  await tick();
  assert.equal(h.sent.length, 2);
  assert.equal(h.sent[1]!.body, 'v4', 'the latest state, once');
  assert.equal(h.sent[1]!.cseq, 2);
});

test('identical bodies are not re-sent', async () => {
  const h = harness();
  await h.n.handleSubscribe(tx(subscribeRequest()));
  await tick();
  h.change();
  await tick();
  assert.equal(h.sent.length, 1);
});

for (const outcome of [481, 408, undefined] as const) {
  test(`a NOTIFY answered ${outcome ?? 'by a timeout'} removes the subscription`, async () => {
    const h = harness();
    h.setAnswer(async () => (outcome ? ({ status: outcome } as SipResponse) : undefined));
    await h.n.handleSubscribe(tx(subscribeRequest()));
    await tick();
    await tick();
    assert.equal(h.n.size, 0);
    assert.deepEqual(h.closed, ['timeout']);
    assert.equal((await h.store.all()).length, 0);
  });
}

test('expiry: NOTIFY terminated;reason=timeout and the record is gone', async () => {
  const h = harness();
  await h.n.handleSubscribe(tx(subscribeRequest(['Expires: 60'])));
  await tick();
  h.n.sweep(Date.now() + 61_000);
  await tick();
  await tick();
  assert.equal(header(h.sent.at(-1)!, 'Subscription-State'), 'terminated;reason=timeout');
  assert.equal(h.n.size, 0);
  assert.equal((await h.store.all()).length, 0);
});

test('refresh: 481 for an unknown dialog, 500 for an old CSeq, 423 below the minimum, else 200 and a NOTIFY', async () => {
  const h = harness();
  const t = tx(subscribeRequest());
  await h.n.handleSubscribe(t);
  const tag = t.answers[0]!.toTag!;
  await tick();
  const unknown = tx(subscribeRequest(['Expires: 60'], 'nosuchtag', 2));
  await h.n.handleSubscribe(unknown);
  assert.equal(unknown.answers[0]!.status, 481);
  const old = tx(subscribeRequest(['Expires: 60'], tag, 1));
  await h.n.handleSubscribe(old);
  assert.equal(old.answers[0]!.status, 500);
  const brief = tx(subscribeRequest(['Expires: 5'], tag, 2));
  await h.n.handleSubscribe(brief);
  assert.equal(brief.answers[0]!.status, 423);
  const ok = tx(subscribeRequest(['Expires: 60'], tag, 3));
  await h.n.handleSubscribe(ok);
  assert.equal(ok.answers[0]!.status, 200);
  await tick();
  assert.equal(h.sent.length, 2, 'a refresh is followed by a NOTIFY even when nothing changed');
});

// RFC 5839 §5's flows, the body standing for the state and the entity-tag naming it.
test('RFC 5839: a refresh whose Suppress-If-Match names the current entity-tag is answered 204 and gets no NOTIFY', async () => {
  const h = harness();
  h.setBody('ffee2');
  const t = tx(subscribeRequest(['Expires: 600']));
  await h.n.handleSubscribe(t);
  await tick();
  assert.equal(h.sent.length, 1);
  assert.equal(header(h.sent[0]!, 'SIP-ETag'), 'ffee2', 'NOTIFY carries the entity-tag (§4.2)');
  const toTag = t.answers[0]!.toTag!;

  const r1 = tx(subscribeRequest(['Expires: 600', 'Suppress-If-Match: ffee2'], toTag, 2));
  await h.n.handleSubscribe(r1);
  await tick();
  assert.equal(r1.answers[0]!.status, 204);
  assert.equal(r1.answers[0]!.headers!.find(([n]) => n === 'Expires')?.[1], '600');
  assert.equal(h.sent.length, 1, 'no NOTIFY after a 204');

  // The state changes: a NOTIFY with the new tag; a refresh naming the old one is a normal refresh.
  h.setBody('ca89a');
  h.change();
  await tick();
  assert.equal(h.sent.length, 2);
  assert.equal(header(h.sent[1]!, 'SIP-ETag'), 'ca89a');
  const r2 = tx(subscribeRequest(['Expires: 600', 'Suppress-If-Match: ffee2'], toTag, 3));
  await h.n.handleSubscribe(r2);
  await tick();
  assert.equal(r2.answers[0]!.status, 200);
  assert.equal(h.sent.length, 3, 'a tag that is not current: NOTIFY with the state');
  // "*" matches whatever is current.
  const r3 = tx(subscribeRequest(['Expires: 600', 'Suppress-If-Match: *'], toTag, 4));
  await h.n.handleSubscribe(r3);
  await tick();
  assert.equal(r3.answers[0]!.status, 204);
  assert.equal(h.sent.length, 3);
});

test('RFC 5839 §6.3: a new subscription whose Suppress-If-Match matches gets a NOTIFY without a body, with the SIP-ETag', async () => {
  const h = harness();
  h.setBody('ca89a');
  const t = tx(subscribeRequest(['Expires: 600', 'Suppress-If-Match: ca89a'], undefined, 1, 'call-new'));
  await h.n.handleSubscribe(t);
  await tick();
  assert.equal(t.answers[0]!.status, 200, 'a new subscription is always 200');
  assert.equal(h.sent.length, 1);
  assert.equal(h.sent[0]!.body, undefined);
  assert.equal(header(h.sent[0]!, 'SIP-ETag'), 'ca89a');
  assert.match(header(h.sent[0]!, 'Subscription-State')!, /^active/);
  // A tag that does not match: the body as usual.
  const u = tx(subscribeRequest(['Expires: 600', 'Suppress-If-Match: old'], undefined, 1, 'call-other'));
  await h.n.handleSubscribe(u);
  await tick();
  assert.equal(h.sent[1]!.body, 'ca89a');
});

/** A second notifier on the same store, as after a SIGKILL (nothing was stopped or flushed by hand). */
async function restarted(h: ReturnType<typeof harness>) {
  const sent: OutgoingRequest[] = [];
  const stack = fakeStack(sent, () => Promise.resolve(200));
  const n = new Notifier(stack, h.store, { minExpires: 10, defaultExpires: 3600, maxExpires: 7200, commonHeaders: () => [] }, silentLogger);
  let body = 'v1';
  n.register({ event: 'presence', admit: () => ({ ok: true, contentType: 'text/plain', binding: { content: (): NotifyContent => ({ state: 'active', body, contentType: 'text/plain', tag: body }), close: () => undefined } }) });
  return { n, sent, setBody: (b: string) => (body = b) };
}

test('CSeqs are reserved in blocks: a busy dialog is not written per NOTIFY, and after a crash no CSeq repeats', async () => {
  const h = harness();
  let writes = 0;
  const put = h.store.put.bind(h.store);
  h.store.put = (k, v) => (writes++, put(k, v));
  await h.n.handleSubscribe(tx(subscribeRequest()));
  await tick();
  await tick();
  const afterSubscribe = writes;
  for (let i = 0; i < 1500; i++) {
    h.setBody(`v${i % 2 ? 'open' : 'closed'}${i}`);
    h.change();
    await tick();
    await tick();
  }
  assert.equal(h.sent.length, 1501);
  const cseqs = h.sent.map((r) => r.cseq);
  assert.deepEqual(cseqs, cseqs.map((_, i) => i + 1), 'CSeq 1, 2, 3… while running');
  assert.ok(writes - afterSubscribe <= 3, `${writes - afterSubscribe} dialog writes for 1,500 NOTIFYs`);
  await h.store.flush();

  const r = await restarted(h);
  r.setBody('after-crash');
  assert.deepEqual(await r.n.restore(), { restored: 1, expired: 0 });
  await tick();
  await tick();
  assert.equal(r.sent.length, 1);
  assert.ok(r.sent[0]!.cseq > 1501, `CSeq after the crash (${r.sent[0]!.cseq}) is above every one sent before`);
  assert.equal(r.sent[0]!.body, 'after-crash');
});

test('a busy dialog\'s last tag is not known to the store: a restart sends the current state even if it is the stored one', async () => {
  const h = harness();
  await h.n.handleSubscribe(tx(subscribeRequest()));
  await tick();
  await tick();
  // v1 went out in a quiet dialog (its tag is stored); then quickly v2 and back to v1.
  for (const b of ['v2', 'v1']) {
    h.setBody(b);
    h.change();
    await tick();
    await tick();
  }
  h.setBody('v2');
  h.change();
  await tick();
  await tick();
  assert.deepEqual(h.sent.map((s) => s.body), ['v1', 'v2', 'v1', 'v2']);
  await h.store.flush();
  // The state went back to v1 (durable, e.g. a PUBLISH) but Herald died before that NOTIFY left.
  const r = await restarted(h);
  r.setBody('v1');
  await r.n.restore();
  await tick();
  await tick();
  assert.deepEqual(r.sent.map((s) => s.body), ['v1'], 'the watcher, left at v2, gets v1');
});

test('a quiet dialog keeps its tag in the store: after a crash nothing unchanged is resent', async () => {
  const h = harness();
  await h.n.handleSubscribe(tx(subscribeRequest()));
  await tick();
  await tick();
  h.setBody('v2');
  h.change();
  await tick();
  await tick();
  // Quiet for a while: the sweep writes the tag the watcher has.
  h.n.sweep(Date.now() + 10_000);
  await h.store.flush();
  const r = await restarted(h);
  r.setBody('v2');
  await r.n.restore();
  await tick();
  await tick();
  assert.deepEqual(r.sent, []);
});

/** Dialog ownership as a cluster node sees it (src/cluster/dialogs.ts), played by the test. */
function owner(reserved: number) {
  const state = { fenceOpen: true, stillOurs: true, checks: [] as ((ok: boolean) => void)[], reservations: [] as number[], released: [] as string[] };
  const own: DialogOwnership = {
    mayAct: () => state.fenceOpen,
    check: () => new Promise<boolean>((r) => state.checks.push(r)),
    claim: async () => ({ ok: true as const, cseq: reserved }),
    reserve: async (_key, upTo) => (state.reservations.push(upTo), state.stillOurs),
    release: (key) => void state.released.push(key),
    ownerOf: async () => undefined,
    forward: async () => undefined,
  };
  return Object.assign(state, { own });
}

test('cluster: while the fence is closed nothing is sent; the NOTIFY goes out once Redis says the dialog is still ours', async () => {
  const o = owner(1000);
  const h = harness(o.own);
  await h.n.handleSubscribe(tx(subscribeRequest()));
  await tick();
  assert.equal(h.sent.length, 1);
  o.fenceOpen = false;
  h.setBody('v2');
  h.change();
  await tick();
  assert.equal(h.sent.length, 1, 'fenced: no NOTIFY');
  assert.equal(o.checks.length, 1, 'the lease is re-checked in Redis');
  o.fenceOpen = true;
  o.checks[0]!(true);
  await tick();
  await tick();
  assert.equal(h.sent.length, 2);
  assert.equal(h.sent[1]!.cseq, 2);
  assert.equal(h.sent[1]!.body, 'v2');
});

test('cluster: dialogs another node took over meanwhile are forgotten without a NOTIFY, their records kept for it', async () => {
  const o = owner(1000);
  const h = harness(o.own);
  await h.n.handleSubscribe(tx(subscribeRequest()));
  await tick();
  h.n.reconcile(() => false);
  h.setBody('v2');
  h.change();
  await tick();
  assert.equal(h.sent.length, 1);
  assert.equal(h.n.size, 0);
  assert.deepEqual(h.closed, [undefined], 'closed as "goes on elsewhere", not ended');
  assert.equal((await h.store.all()).length, 1, 'the new owner reads the record');
  assert.deepEqual(o.released, []);
});

test('cluster: a CSeq above the reserved block is reserved in Redis first; refused (another owner) ⇒ dropped silently', async () => {
  const o = owner(2);
  const h = harness(o.own);
  await h.n.handleSubscribe(tx(subscribeRequest()));
  await tick();
  h.setBody('v2');
  h.change();
  await tick();
  assert.deepEqual(h.sent.map((r) => r.cseq), [1, 2]);
  assert.deepEqual(o.reservations, [], 'within the block claimed with the dialog');
  o.stillOurs = false;
  h.setBody('v3');
  h.change();
  await tick();
  await tick();
  assert.deepEqual(h.sent.map((r) => r.cseq), [1, 2], 'no CSeq 3 from a node that lost the dialog');
  assert.deepEqual(o.reservations, [1002]);
  assert.equal(h.n.size, 0);
});
