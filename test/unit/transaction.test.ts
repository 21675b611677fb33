// Client transactions on one timer wheel (Timers E and F, RFC 3261 §17.1.2.2) under mocked time, and
// the response fast path that matches a NOTIFY's 200 on its status, top Via branch and CSeq method.
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientTransactions, T1, T2, branchOf, newTransactionId, transactionIdOf } from '../../src/sip/transaction.js';
import { peekResponse } from '../../src/sip/codec.js';

const head = (lines: string[]) => Buffer.from(lines.join('\r\n'), 'latin1');

test('peekResponse: status, top Via branch and CSeq method, or nothing when the head is not simple', () => {
  const ok = head(['SIP/2.0 200 OK', 'Via: SIP/2.0/UDP 10.0.0.1:5060;rport=5060;Branch=z9hG4bKabc.1;received=10.0.0.1, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKother', 'From: <sip:a@x>;tag=1', 'CSeq: 17 NOTIFY', 'Content-Length: 0']);
  assert.deepEqual(peekResponse(ok), { status: 200, branch: 'z9hG4bKabc.1', method: 'NOTIFY' });
  assert.deepEqual(peekResponse(head(['SIP/2.0 481 Call/Transaction Does Not Exist', 'v: SIP/2.0/UDP h;branch=z9hG4bKx', 'cseq: 2 NOTIFY'])), { status: 481, branch: 'z9hG4bKx', method: 'NOTIFY' });
  assert.equal(peekResponse(head(['NOTIFY sip:a@x SIP/2.0', 'Via: SIP/2.0/UDP h;branch=z9hG4bKx', 'CSeq: 2 NOTIFY'])), undefined, 'a request');
  assert.equal(peekResponse(head(['SIP/2.0 200 OK', 'Via: SIP/2.0/UDP h', ' ;branch=z9hG4bKx', 'CSeq: 2 NOTIFY'])), undefined, 'a folded line');
  assert.equal(peekResponse(head(['SIP/2.0 200 OK', 'Via: SIP/2.0/UDP h;branch=z9hG4bKx'])), undefined, 'no CSeq');
  assert.equal(peekResponse(head(['SIP/2.0 2000 OK', 'Via: SIP/2.0/UDP h;branch=z9hG4bKx', 'CSeq: 2 NOTIFY'])), undefined, 'a bad status');
  assert.equal(peekResponse(head(['SIP/2.0 200 OK', 'Via: SIP/2.0/UDP h;branch=z9hG4bKx', 'CSeq: two NOTIFY'])), undefined, 'a bad CSeq');
  assert.equal(peekResponse(head(['garbage'])), undefined);
  // A whole datagram, read only up to the end of its header section.
  const whole = head(['SIP/2.0 200 OK', 'Via: SIP/2.0/UDP h;branch=z9hG4bKx', '', 'CSeq: 2 NOTIFY']);
  assert.equal(peekResponse(whole, whole.indexOf('\r\n\r\n')), undefined, 'the body is not read as headers');
  const whole2 = head(['SIP/2.0 200 OK', 'CSeq: 2 NOTIFY', 'Via: SIP/2.0/UDP h;branch=z9hG4bKy', '', 'Via: SIP/2.0/UDP h;branch=z9hG4bKz']);
  assert.deepEqual(peekResponse(whole2, whole2.indexOf('\r\n\r\n')), { status: 200, branch: 'z9hG4bKy', method: 'NOTIFY' });
});

test('one timer wheel: Timer E doubles up to T2, Timer F ends the transaction at 64·T1, a response stops both', () => {
  mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 });
  try {
    const table = new ClientTransactions<number>();
    const sends = { a: 0, b: 0, r: 0 };
    const finals: Record<string, number | undefined | 'none'> = { a: 'none', b: 'none', r: 'none' };
    const [a, b, r] = [1, 2, 3];
    table.start(a, 'NOTIFY', () => sends.a++, false, (x) => (finals.a = x));
    table.start(b, 'NOTIFY', () => sends.b++, false, (x) => (finals.b = x));
    table.start(r, 'NOTIFY', () => sends.r++, true, (x) => (finals.r = x));
    assert.equal(table.has(b, 'NOTIFY'), true);
    assert.equal(table.has(b, 'SUBSCRIBE'), false, 'the CSeq method must match too (RFC 3261 §17.1.3)');
    assert.deepEqual(sends, { a: 1, b: 1, r: 1 });
    // Past Timer E's first firing (T1, at most one wheel slot late): one retransmission each over UDP.
    mock.timers.tick(T1 + 50);
    assert.deepEqual(sends, { a: 2, b: 2, r: 1 });
    assert.equal(table.finish(b, 200), true);
    assert.equal(finals.b, 200);
    assert.equal(table.finish(b, 200), false, 'a retransmitted response matches nothing');
    // The intervals double (2·T1, 4·T1) and are capped at T2 until Timer F at 64·T1.
    let expected = 2;
    let at = T1;
    for (let interval = 2 * T1; at + interval < 64 * T1; interval = Math.min(interval * 2, T2)) {
      at += interval;
      expected++;
    }
    for (let t = 0; t < 64 * T1; t += 50) mock.timers.tick(50);
    assert.equal(sends.a, expected);
    assert.equal(sends.b, 2, 'nothing after its response');
    assert.equal(sends.r, 1, 'no retransmission over a reliable transport');
    assert.equal(finals.a, undefined, 'Timer F: timed out');
    assert.equal(finals.r, undefined);
    assert.equal(table.size, 0);
  } finally {
    mock.timers.reset();
  }
});

test('a send that fails at once finishes its transaction at once', () => {
  const table = new ClientTransactions<number>();
  let final: number | undefined | 'none' = 'none';
  table.start(7, 'NOTIFY', () => table.finish(7, undefined), false, (x) => (final = x));
  assert.equal(final, undefined);
  assert.equal(table.size, 0);
  table.clear();
});

test('a client transaction is matched on the number its branch carries; other branches match none', () => {
  const id = newTransactionId();
  const branch = branchOf(id);
  assert.match(branch, /^z9hG4bK/, 'RFC 3261 §8.1.1.7 magic cookie');
  assert.equal(transactionIdOf(branch), id);
  assert.equal(transactionIdOf(branchOf(newTransactionId())), id + 1);
  assert.equal(transactionIdOf(`${branch}-`), -1, "not the exact text branchOf writes");
  assert.equal(transactionIdOf(branch.toUpperCase()), -1);
  assert.equal(transactionIdOf(`${branch}0`) === id, false);
  assert.equal(transactionIdOf('z9hG4bKabc.1'), -1, 'another client');
  assert.equal(transactionIdOf(undefined), -1);
});
