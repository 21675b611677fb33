import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExpiryWheel, KeyedQueue } from '../../src/util/expiry.js';

test('keys come due in their second, never early, and can be moved or removed', () => {
  const w = new ExpiryWheel<string>();
  const t0 = Math.floor(Date.now() / 1000) * 1000;
  w.set('a', t0 + 1500);
  w.set('b', t0 + 3000);
  w.set('c', t0 + 3000);
  w.delete('c');
  w.set('b', t0 + 5000);
  assert.deepEqual(w.due(t0 + 1000), []);
  assert.deepEqual(w.due(t0 + 2000), ['a']);
  assert.deepEqual(w.due(t0 + 4000), []);
  assert.deepEqual(w.due(t0 + 5000), ['b']);
  assert.equal(w.size, 0);
  w.set('past', t0 - 10_000);
  assert.deepEqual(w.due(t0 + 6000), ['past'], 'a time already past is swept next, not lost');
});

test('KeyedQueue runs one key in order and survives a failing operation', async () => {
  const q = new KeyedQueue();
  const order: number[] = [];
  const slow = q.run('k', async () => {
    await new Promise((r) => setTimeout(r, 20));
    order.push(1);
  });
  const failing = q.run('k', async () => {
    order.push(2);
    throw new Error('x');
  });
  const third = q.run('k', async () => order.push(3));
  await slow;
  await assert.rejects(failing);
  await third;
  assert.deepEqual(order, [1, 2, 3]);
});
