// The RFC 3903 ESC state machine without SIP: entity-tags, expiry and composition hand-off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PresenceAgent, type PublicationRecord } from '../../src/presence/pa.js';
import { Store } from '../../src/store/store.js';
import { silentLogger } from '../../src/log.js';
import { parsePidf } from '../../src/formats/pidf.js';
import type { ProviderState } from '../../src/hub/types.js';

const A = 'sip:alice@example.test';
const doc = (note: string, tuple = 't1') =>
  `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${A}"><tuple id="${tuple}"><status><basic>open</basic></status><note>${note}</note></tuple></presence>`;

function agent() {
  const store = Store.open('memory://', silentLogger);
  const col = store.collection<PublicationRecord>('publication');
  return { pa: new PresenceAgent(['example.test'], col, silentLogger), col };
}

test('initial → refresh → modify → remove, each success with a fresh entity-tag', async () => {
  const { pa, col } = agent();
  const seen: ProviderState[] = [];
  pa.watch(A, (s) => seen.push(s));
  const r1 = await pa.publish({ kind: 'initial', presentity: A, document: parsePidf(doc('a')), body: doc('a'), expires: 60 }, 1000);
  assert.ok(r1.ok);
  const r2 = await pa.publish({ kind: 'refresh', presentity: A, etag: r1.etag, expires: 60 }, 2000);
  assert.ok(r2.ok && r2.etag !== r1.etag);
  assert.equal(seen.length, 2, 'a refresh changes no state, so watchers hear nothing');
  assert.deepEqual(await pa.publish({ kind: 'refresh', presentity: A, etag: r1.etag, expires: 60 }, 2000), { ok: false, status: 412 });
  const r3 = await pa.publish({ kind: 'modify', presentity: A, etag: r2.etag, document: parsePidf(doc('b')), body: doc('b'), expires: 60 }, 3000);
  assert.ok(r3.ok);
  assert.equal(seen.length, 3);
  assert.equal((await col.all()).length, 1, 'the store holds exactly the live publication');
  const r4 = await pa.publish({ kind: 'remove', presentity: A, etag: r3.etag }, 4000);
  assert.ok(r4.ok);
  assert.equal(seen.at(-1)!.document, undefined);
  assert.equal((await col.all()).length, 0);
});

test("one presentity's entity-tag does not work for another", async () => {
  const { pa } = agent();
  const r = await pa.publish({ kind: 'initial', presentity: A, document: parsePidf(doc('a')), body: doc('a'), expires: 60 });
  assert.ok(r.ok);
  assert.deepEqual(await pa.publish({ kind: 'remove', presentity: 'sip:bob@example.test', etag: r.etag }), { ok: false, status: 412 });
});

test('two devices are composed; expiry of one leaves the other', async () => {
  const { pa } = agent();
  await pa.publish({ kind: 'initial', presentity: A, document: parsePidf(doc('phone', 'p')), body: doc('phone', 'p'), expires: 10 }, 0);
  await pa.publish({ kind: 'initial', presentity: A, document: parsePidf(doc('laptop', 'l')), body: doc('laptop', 'l'), expires: 100 }, 1);
  assert.deepEqual(pa.document(A)!.tuples.map((t) => t.id).sort(), ['l', 'p']);
  pa.sweep(11_000);
  assert.deepEqual(pa.document(A)!.tuples.map((t) => t.id), ['l']);
  pa.sweep(101_000);
  assert.equal(pa.document(A), undefined);
});

test('restore drops what expired while down and keeps the rest', async () => {
  const store = Store.open('memory://', silentLogger);
  const col = store.collection<PublicationRecord>('publication');
  const pa1 = new PresenceAgent(['example.test'], col, silentLogger);
  const now = Date.now();
  await pa1.publish({ kind: 'initial', presentity: A, document: parsePidf(doc('x', 'x')), body: doc('x', 'x'), expires: 1 }, now - 5000);
  await pa1.publish({ kind: 'initial', presentity: A, document: parsePidf(doc('y', 'y')), body: doc('y', 'y'), expires: 600 }, now);
  const pa2 = new PresenceAgent(['example.test'], col, silentLogger);
  assert.deepEqual(await pa2.restore(now), { restored: 1, expired: 1 });
  assert.deepEqual(pa2.document(A)!.tuples.map((t) => t.id), ['y']);
});
