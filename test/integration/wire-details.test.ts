// The RFC 3261/6665 details real phones (linphonec 5.1, baresip 1.0) met on the wire, over real sockets
// (shared/reference/standards-pitfalls.md, "Met on the wire"): a To tag on every response but 100, a
// NOTIFY after every accepted refresh even while one is unanswered, a TCP response after the phone
// closed its connection, the subscriber's Event spelling echoed, list NOTIFYs Linphone can read, and
// RFC 6446 rate parameters only for subscribers that asked.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { TestUA, pidf, requestWithAuth, rnd, type Msg, type UaProtocol } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { xcap } from '../support/xcap.js';
import { rlsServices } from '../support/rls.js';
import { SipStack, type ServerTx } from '../../src/sip/stack.js';
import { silentLogger } from '../../src/log.js';

const D = 'example.test';
const uri = (u: string): string => `sip:${u}@${D}`;
const ALICE = uri('alice');
const STRANGER = 'sip:someone@elsewhere.test';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Sends one request over a new TCP connection, exactly as written (`headers` without Via and
 * Content-Length, which are added), and resolves with the head of the first answer.
 */
function rawTcp(port: number, startLine: string, headers: string[], body: Buffer = Buffer.alloc(0)): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port }, () => {
      const head = [startLine, `Via: SIP/2.0/TCP 127.0.0.1:${sock.localPort};branch=z9hG4bK${rnd()}`, ...headers, `Content-Length: ${body.length}`, '', ''].join('\r\n');
      sock.write(Buffer.concat([Buffer.from(head), body]));
    });
    let text = '';
    sock.on('data', (b: Buffer) => {
      text += b.toString('latin1');
      if (text.includes('\r\n\r\n')) {
        sock.destroy();
        resolve(text);
      }
    });
  });
}

describe('RFC 3261 §8.2.6.2: a To tag on every response but 100', () => {
  let h: TestHerald;
  let ua: TestUA;
  before(async () => {
    h = await startTestHerald({ auth: { enabled: true }, presence: { subscribe_min_expires: 10 } });
    await h.herald.users.add(ALICE, 'alice-pw');
    await h.herald.users.add(uri('bob'), 'bob-pw');
    ua = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
  });
  after(async () => {
    ua.close();
    await h.stop();
  });

  const tagged = (r: Msg, what: string): void => {
    assert.ok(r.status !== undefined && r.status >= 200, `${what}: ${r.status}`);
    assert.ok(r.toTag, `${what}: ${r.status} ${r.reason} has no To tag`);
  };

  test('every method, out of a dialog, gets a tagged final answer', async () => {
    const methods = ['OPTIONS', 'PUBLISH', 'SUBSCRIBE', 'NOTIFY', 'MESSAGE', 'INVITE', 'REGISTER', 'BYE', 'REFER', 'INFO', 'UPDATE', 'PRACK', 'CANCEL', 'FROBNICATE'];
    for (const method of methods) {
      for (const from of [ALICE, STRANGER]) {
        const r = await ua.request(method, ALICE, { from, headers: { Event: 'presence', Expires: '60' } });
        tagged(r, `${method} from ${from}`);
      }
    }
  });

  test('PUBLISH: 401, 200, 412, 403, 489 and 400 are all tagged', async () => {
    const pub = (headers: Record<string, string>, user = 'alice', target = ALICE, body = pidf(target)) =>
      requestWithAuth(ua, 'PUBLISH', target, { from: uri(user), headers: { Event: 'presence', Expires: '60', ...headers }, body }, user, `${user}-pw`);
    tagged(await ua.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence', Expires: '60' }, body: pidf(ALICE) }), 'PUBLISH 401');
    const ok = await pub({});
    assert.equal(ok.status, 200);
    tagged(ok, 'PUBLISH 200');
    const stale = await pub({ 'SIP-If-Match': 'no-such-etag' });
    assert.equal(stale.status, 412);
    tagged(stale, 'PUBLISH 412');
    const forbidden = await pub({}, 'bob', ALICE);
    assert.equal(forbidden.status, 403);
    tagged(forbidden, 'PUBLISH 403');
    const badEvent = await pub({ Event: 'no-such-package' });
    assert.equal(badEvent.status, 489);
    tagged(badEvent, 'PUBLISH 489');
    const badBody = await pub({}, 'alice', ALICE, '<presence');
    assert.equal(badBody.status, 400);
    tagged(badBody, 'PUBLISH 400');
  });

  test('SUBSCRIBE refusals (423, 489, 400, 404) and a stateless 400 are tagged', async () => {
    const sub = (headers: Record<string, string>, target = ALICE, contact = true) =>
      ua.request('SUBSCRIBE', target, { from: STRANGER, contact, headers: { Event: 'presence', Expires: '600', ...headers } });
    const brief = await sub({ Expires: '1' });
    assert.equal(brief.status, 423);
    tagged(brief, 'SUBSCRIBE 423');
    const badEvent = await sub({ Event: 'no-such-package' });
    assert.equal(badEvent.status, 489);
    tagged(badEvent, 'SUBSCRIBE 489');
    const noContact = await sub({}, ALICE, false);
    assert.equal(noContact.status, 400);
    tagged(noContact, 'SUBSCRIBE 400');
    const noUser = await sub({}, `sip:${D}`);
    assert.equal(noUser.status, 404);
    tagged(noUser, 'SUBSCRIBE 404');
    // A CSeq whose method is not the request's: answered by the codec, without a transaction.
    const text = await rawTcp(h.port('tcp'), `OPTIONS ${ALICE} SIP/2.0`, ['Max-Forwards: 70', `From: <${STRANGER}>;tag=${rnd()}`, `To: <${ALICE}>`, `Call-ID: ${rnd()}`, 'CSeq: 1 PUBLISH']);
    assert.match(text, /^SIP\/2\.0 400 /);
    assert.match(text, /^To: <sip:alice@example\.test>;tag=\w+/m);
  });
});

describe('RFC 6665 §4.2.1.2: a refresh that arrives while NOTIFY 1 is unanswered is followed by a NOTIFY', () => {
  for (const protocol of ['udp', 'tcp'] as UaProtocol[]) {
    test(`over ${protocol.toUpperCase()}`, async () => {
      const h = await startTestHerald();
      const pub = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
      const w = await TestUA.open(protocol, '127.0.0.1', h.port(protocol === 'udp' ? 'udp' : 'tcp'));
      try {
        assert.equal((await pub.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence', Expires: '600' }, body: pidf(ALICE, { note: 'here' }) })).status, 200);
        // NOTIFY 1 is held (linphonec over TCP refreshes ~1 ms after receiving it, before answering it).
        let first: ((m: Msg) => void) | undefined;
        const notify1 = new Promise<Msg>((resolve) => (first = resolve));
        let holding = true;
        w.answerWith = (m) => {
          if (m.method === 'NOTIFY' && holding) {
            first?.(m);
            return 'hold';
          }
          return 200;
        };
        const callId = rnd();
        const fromTag = rnd();
        const s = await w.request('SUBSCRIBE', ALICE, { from: uri('bob'), fromTag, callId, cseq: 1, headers: { Event: 'presence', Expires: '600' } });
        assert.equal(s.status, 200);
        const n1 = await notify1;
        const refresh = await w.request('SUBSCRIBE', ALICE, { from: uri('bob'), fromTag, toTag: s.toTag!, callId, cseq: 2, headers: { Event: 'presence', Expires: '600' } });
        assert.equal(refresh.status, 200);
        holding = false;
        w.release();
        const n2 = await w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId && m.cseq > n1.cseq, 8000);
        assert.match(n2.h('subscription-state')!, /^active/);
        assert.match(n2.body, /here/, 'the NOTIFY after the refresh carries the full state');
      } finally {
        pub.close();
        w.close();
        await h.stop();
      }
    });
  }
});

describe('RFC 3261 §18.2.2: a TCP response whose connection is gone', () => {
  test('opens a new connection to the top Via sent-by port, not to the old source port', async () => {
    const stack = new SipStack({ listen: [{ transport: 'tcp', address: '127.0.0.1', port: 0 }], maxMessageBytes: 65535, log: silentLogger });
    let pending: ((tx: ServerTx) => void) | undefined;
    const request = new Promise<ServerTx>((resolve) => (pending = resolve));
    stack.onRequest = (tx) => pending?.(tx);
    await stack.start();
    // The phone's own listening port, named in its Via.
    const received: string[] = [];
    let gotIt: (() => void) | undefined;
    const arrived = new Promise<void>((resolve) => (gotIt = resolve));
    const phone = net.createServer((sock) => {
      sock.on('data', (b: Buffer) => {
        received.push(b.toString('latin1'));
        if (received.join('').includes('\r\n\r\n')) gotIt?.();
      });
    });
    await new Promise<void>((resolve) => phone.listen(0, '127.0.0.1', () => resolve()));
    const viaPort = (phone.address() as net.AddressInfo).port;
    try {
      const herald = stack.listening.find((l) => l.transport === 'tcp')!;
      const client = net.connect({ host: '127.0.0.1', port: herald.port });
      await new Promise<void>((resolve) => client.once('connect', () => resolve()));
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      client.write(
        [`PUBLISH ${ALICE} SIP/2.0`, `Via: SIP/2.0/TCP 127.0.0.1:${viaPort};branch=z9hG4bK${rnd()}`, 'Max-Forwards: 70', `From: <${ALICE}>;tag=${rnd()}`, `To: <${ALICE}>`, `Call-ID: ${rnd()}`, 'CSeq: 7 PUBLISH', 'Event: presence', 'Content-Length: 0', '', ''].join('\r\n'),
      );
      const tx = await request;
      assert.notEqual(client.localPort, viaPort);
      // The phone closes its connection before the answer (baresip after its final un-PUBLISH).
      client.destroy();
      await closed;
      await sleep(300); // Herald sees the close (bounded wait; nothing is timed)
      tx.respond({ status: 200, reason: 'OK' });
      await Promise.race([arrived, sleep(5000).then(() => assert.fail(`no response on the Via port ${viaPort}`))]);
      assert.match(received.join(''), /^SIP\/2\.0 200 OK\r\n/);
      assert.match(received.join(''), /\r\nCSeq: 7 PUBLISH\r\n/);
    } finally {
      await stack.stop();
      await new Promise<void>((resolve) => phone.close(() => resolve()));
    }
  });
});

describe('Event spelling, list NOTIFY framing and RFC 6446 parameters', () => {
  let h: TestHerald;
  let w: TestUA;
  before(async () => {
    // Herald's default batching interval (rls.min_notify_interval = 1000): a local throttle, not an RFC 6446 rate.
    h = await startTestHerald();
    await h.herald.users.add(uri('owner'), 'owner-pw');
    const put = await xcap('PUT', h.xcapUrl(), `rls-services/users/${uri('owner')}/index`, { username: 'owner', password: 'owner-pw' }, rlsServices({ [uri('buddies')]: [ALICE, uri('dave')] }), 'application/rls-services+xml');
    assert.equal(put.status, 201, put.body);
    w = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    const p = await w.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence', Expires: '600' }, body: pidf(ALICE, { note: 'alice-here' }) });
    assert.equal(p.status, 200);
  });
  after(async () => {
    w.close();
    await h.stop();
  });

  async function firstNotify(target: string, headers: Record<string, string>): Promise<Msg> {
    const callId = rnd();
    const s = await w.request('SUBSCRIBE', target, { from: uri('watcher'), callId, headers: { Expires: '600', ...headers } });
    assert.equal(s.status, 200, s.reason);
    return w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId);
  }

  test('the NOTIFY echoes the subscriber\'s spelling of the event package (RFC 6665 §8.2.1 compares byte by byte)', async () => {
    assert.equal((await firstNotify(ALICE, { Event: 'Presence' })).h('event'), 'Presence');
    assert.equal((await firstNotify(ALICE, { Event: 'presence' })).h('event'), 'presence');
  });

  test('a list NOTIFY: token boundary unquoted, Content-ID <cid> tied to RLMI, no max-rate for a subscriber that asked for none', async () => {
    const n = await firstNotify(uri('buddies'), { Event: 'presence', Supported: 'eventlist' });
    assert.match(n.h('content-type')!, /;boundary=[A-Za-z0-9]+$/);
    assert.doesNotMatch(n.h('content-type')!, /boundary="/);
    const cid = /cid="([^"]+)"/.exec(n.body)?.[1];
    assert.ok(cid, n.body);
    assert.ok(n.body.includes(`\r\nContent-ID: <${cid}>\r\n`), n.body);
    assert.equal(n.h('event'), 'presence');
    assert.match(n.h('subscription-state')!, /^active;expires=\d+$/);
  });

  test('an RFC 6446 max-rate request is answered with the rate Herald applies (its own, slower, one)', async () => {
    const n = await firstNotify(uri('buddies'), { Event: 'presence;max-rate=10', Supported: 'eventlist' });
    assert.match(n.h('subscription-state')!, /;max-rate=1$/);
  });

  test('Linphone (by its User-Agent): Event "Presence" and bare Content-Id parts on list NOTIFYs, nowhere else', async () => {
    const ua = { 'User-Agent': 'Linphonec/5.1.65' };
    const n = await firstNotify(uri('buddies'), { Event: 'presence', Supported: 'eventlist', ...ua });
    assert.equal(n.h('event'), 'Presence');
    const cid = /cid="([^"]+)"/.exec(n.body)?.[1];
    assert.ok(cid, n.body);
    assert.ok(n.body.includes(`\r\nContent-Id: ${cid}\r\n`), n.body);
    assert.ok(!n.body.includes('Content-ID: <'), n.body);
    // Its single-buddy subscriptions get the plain echo.
    assert.equal((await firstNotify(ALICE, { Event: 'presence', ...ua })).h('event'), 'presence');
  });
});

describe('RFC 3261 §20.12 Content-Encoding (Linphone deflates its list SUBSCRIBE body)', () => {
  test('a deflated PUBLISH body is read; an unknown coding is 415 with Accept-Encoding', async () => {
    const { deflateSync } = await import('node:zlib');
    const h = await startTestHerald();
    const ua = await TestUA.open('tcp', '127.0.0.1', h.port('tcp'));
    const send = (encoding: string, body: Buffer): Promise<string> =>
      rawTcp(h.port('tcp'), `PUBLISH ${ALICE} SIP/2.0`, ['Max-Forwards: 70', `From: <${ALICE}>;tag=${rnd()}`, `To: <${ALICE}>`, `Call-ID: ${rnd()}`, 'CSeq: 1 PUBLISH', 'Event: presence', 'Expires: 60', 'Content-Type: application/pidf+xml', `Content-Encoding: ${encoding}`], body);
    try {
      assert.match(await send('deflate', deflateSync(Buffer.from(pidf(ALICE, { note: 'squeezed' })))), /^SIP\/2\.0 200 /);
      const s = await ua.request('SUBSCRIBE', ALICE, { from: uri('bob'), headers: { Event: 'presence', Expires: '60' } });
      assert.equal(s.status, 200);
      const n = await ua.nextRequest((m) => m.method === 'NOTIFY');
      assert.match(n.body, /squeezed/);
      const refused = await send('br', Buffer.from('xx'));
      assert.match(refused, /^SIP\/2\.0 415 /);
      assert.match(refused, /\r\nAccept-Encoding: deflate, gzip, identity\r\n/);
    } finally {
      ua.close();
      await h.stop();
    }
  });
});
