// The NOTIFY hot path's byte-level pieces: a prepared dialog request (RequestTemplate) writes the
// same bytes as the whole-request encoder, and the framing reads Content-Length from the head's bytes
// with the same outcomes as before (a number, missing, or bad).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestTemplate, assembleRequest, decode, encodeRequest, requestFixedLines } from '../../src/sip/codec.js';
import { StreamFramer, splitDatagram, type InboundMessage } from '../../src/sip/transport.js';
import type { Flow, Via } from '../../src/sip/message.js';

const dialog = {
  method: 'NOTIFY',
  uri: 'sip:bob@192.0.2.7:5062;transport=udp',
  callId: 'c1@x',
  from: { display: undefined, uri: 'sip:alice@example.test', params: { tag: 'lt1' } },
  to: { display: undefined, uri: 'sip:bob@example.test', params: { tag: 'rt9' } },
  route: ['<sip:proxy.example.test;lr>'],
  contact: '<sip:127.0.0.1:5060>',
};

test('a prepared request is byte for byte the request encodeRequest writes, for each transport, with and without a body', () => {
  const t = new RequestTemplate(dialog.method, dialog.uri, requestFixedLines(dialog));
  const body = Buffer.from('<presence entity="sip:alice@example.test">ü</presence>', 'utf8');
  for (const protocol of ['UDP', 'TCP', 'UDP'] as const) {
    for (const [b, ct] of [[body, 'application/pidf+xml'], [undefined, undefined]] as const) {
      const branch = `z9hG4bK${protocol}${b ? 'b' : 'n'}`;
      const more = 'Event: presence\r\nSubscription-State: active;expires=60\r\n';
      const got = t.encode(protocol, '127.0.0.1', 5060, branch, 42, more, b, ct);
      const via: Via = { protocol, host: '127.0.0.1', port: 5060, params: protocol === 'UDP' ? { branch, rport: null } : { branch } };
      const want = assembleRequest(dialog.method, dialog.uri, via, requestFixedLines(dialog), 42, more, b, ct);
      assert.equal(got.toString('latin1'), want.toString('latin1'));
      // ...which is encodeRequest's request with those lines among the fixed ones.
      const whole = encodeRequest({ ...dialog, via, cseq: 42, headers: [['Event', 'presence'], ['Subscription-State', 'active;expires=60']], ...(b ? { body: b.toString('utf8'), contentType: ct } : {}) });
      assert.equal(got.length, whole.length);
      assert.equal(got.toString('latin1'), want.toString('latin1'));
    }
  }
  // Another sent-by (a listener on another port): the kept bytes are rebuilt.
  const other = t.encode('UDP', '10.0.0.1', undefined, 'z9hG4bKq', 1, '', undefined, undefined).toString('latin1');
  assert.match(other, /^NOTIFY sip:bob@192\.0\.2\.7:5062;transport=udp SIP\/2\.0\r\nVia: SIP\/2\.0\/UDP 10\.0\.0\.1;branch=z9hG4bKq;rport\r\n/);
  const d = decode(Buffer.from(other.slice(0, other.indexOf('\r\n\r\n')), 'latin1'), Buffer.alloc(0), { protocol: 'UDP', address: '127.0.0.1', port: 1 });
  assert.equal(d.kind, 'request');
});

const flow: Flow = { protocol: 'UDP', address: '127.0.0.1', port: 5060 };
const msg = (head: string, body = '') => Buffer.from(`${head}\r\n\r\n${body}`, 'latin1');

test('datagram framing reads Content-Length (and its compact form) from the bytes', () => {
  const base = 'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nCSeq: 1 NOTIFY';
  assert.equal(splitDatagram(msg(`${base}\r\nContent-Length: 3`, 'abcdef'), flow, 65535)?.body.toString(), 'abc');
  assert.equal(splitDatagram(msg(`${base}\r\nl :  2  `, 'abcdef'), flow, 65535)?.body.toString(), 'ab', 'compact form, blanks around');
  assert.equal(splitDatagram(msg(`${base}\r\ncontent-LENGTH:0`, 'abcdef'), flow, 65535)?.body.length, 0);
  assert.equal(splitDatagram(msg(base, 'abcdef'), flow, 65535)?.body.toString(), 'abcdef', 'none: the rest of the datagram');
  assert.equal(splitDatagram(msg(`${base}\r\nContent-Length: x1`, 'abcdef'), flow, 65535)?.framingError, 'Bad Content-Length');
  assert.equal(splitDatagram(msg(`${base}\r\nContent-Length:`, 'abcdef'), flow, 65535)?.framingError, 'Bad Content-Length');
  assert.equal(splitDatagram(msg(`${base}\r\nContent-Length: 9`, 'abc'), flow, 65535)?.framingError, 'Body shorter than Content-Length');
  assert.equal(splitDatagram(msg(`${base}\r\nContent-Length: ${'9'.repeat(400)}`, 'abc'), flow, 65535)?.framingError, 'Bad Content-Length');
  assert.equal(splitDatagram(msg(`${base}\r\nContent-Lengthy: 1\r\nLx: 1`, 'abcdef'), flow, 65535)?.body.toString(), 'abcdef', 'other headers are not it');
});

test('stream framing: Content-Length from the bytes, missing or bad ends the stream', () => {
  const got: InboundMessage[] = [];
  const f = new StreamFramer(flow, 65535, (m) => got.push(m), () => undefined);
  assert.equal(f.push(msg('OPTIONS sip:a@x SIP/2.0\r\nl: 2', 'hi')), true);
  assert.equal(got[0]?.body.toString(), 'hi');
  assert.equal(f.push(msg('OPTIONS sip:a@x SIP/2.0\r\nFoo: 2')), false);
  assert.equal(got[1]?.framingError, 'Missing Content-Length');
  const g = new StreamFramer(flow, 65535, (m) => got.push(m), () => undefined);
  assert.equal(g.push(msg('OPTIONS sip:a@x SIP/2.0\r\nContent-Length: 2x')), false);
  assert.equal(got[2]?.framingError, 'Bad Content-Length');
});
