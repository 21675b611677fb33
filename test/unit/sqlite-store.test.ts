// The store on its SQLite file (src/store/sqlite.ts behind keyv): records survive a reopen, each
// collection lists only its own records (past one listing page), databases written by the earlier
// @keyv/sqlite store read unchanged, and a write waits for another process's lock instead of failing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import Database from 'better-sqlite3';
import { Store } from '../../src/store/store.js';
import { silentLogger } from '../../src/log.js';

function tempDb(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'herald-store-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'herald.db');
}

interface Rec {
  n: number;
  s: string;
}

test('records survive a reopen; each collection lists only its own, past one listing page', async (t) => {
  const path = tempDb(t);
  const store = Store.open(`sqlite://${path}`, silentLogger);
  const a = store.collection<Rec>('a');
  const ab = store.collection<Rec>('a-b');
  const b = store.collection<Rec>('b');
  const writes: Promise<void>[] = [];
  for (let i = 0; i < 2500; i++) writes.push(a.put(`k${i}`, { n: i, s: `a${i}` }));
  writes.push(ab.put('x', { n: -1, s: 'a namespace that begins like another' }), b.put('k1', { n: 1, s: 'b' }), b.put('gone', { n: 0, s: '' }));
  await Promise.all(writes);
  await b.delete('gone');
  await store.close();

  const again = Store.open(`sqlite://${path}`, silentLogger);
  t.after(() => again.close());
  const all = await again.collection<Rec>('a').all();
  assert.equal(all.length, 2500);
  assert.deepEqual(new Set(all.map(([k]) => k)).size, 2500);
  assert.deepEqual(all.find(([k]) => k === 'k1234')?.[1], { n: 1234, s: 'a1234' });
  assert.deepEqual(await again.collection<Rec>('b').all(), [['k1', { n: 1, s: 'b' }]]);
  assert.deepEqual(await again.collection<Rec>('a-b').get('x'), { n: -1, s: 'a namespace that begins like another' });
  assert.equal(await again.collection<Rec>('b').get('gone'), undefined);
});

test('a database written by @keyv/sqlite reads unchanged, and what Herald writes keeps its text', async (t) => {
  const path = tempDb(t);
  // The rows as @keyv/sqlite 4 with @keyv/serialize wrote them: a string beginning with ':' escaped by one more ':'.
  const old = new Database(path);
  old.exec('CREATE TABLE keyv(key VARCHAR(255) PRIMARY KEY, value TEXT)');
  old.prepare('INSERT INTO keyv (key, value) VALUES (?, ?)').run('user:sip:alice@example.test', '{"value":{"ha1":"abc","note":"::colon first"},"expires":null}');
  old.close();

  const store = Store.open(`sqlite://${path}`, silentLogger);
  const users = store.collection<{ ha1: string; note: string }>('user');
  assert.deepEqual(await users.get('sip:alice@example.test'), { ha1: 'abc', note: ':colon first' });
  await users.put('sip:bob@example.test', { ha1: 'def', note: ':again' });
  await store.close();

  const raw = new Database(path, { readonly: true });
  const row = raw.prepare('SELECT value FROM keyv WHERE key = ?').get('user:sip:bob@example.test') as { value: string };
  raw.close();
  assert.deepEqual(JSON.parse(row.value), { value: { ha1: 'def', note: '::again' } });
});

test('a write waits for the lock another process holds (herald user add while Herald runs)', async (t) => {
  const path = tempDb(t);
  const store = Store.open(`sqlite://${path}`, silentLogger);
  t.after(() => store.close());
  const c = store.collection<Rec>('c');
  await c.put('first', { n: 1, s: '' });
  // Another process takes the write lock, says so, and holds it for a moment.
  const holder = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import Database from 'better-sqlite3';
       const db = new Database(${JSON.stringify(path)});
       db.exec('BEGIN IMMEDIATE');
       db.prepare("INSERT INTO keyv (key, value) VALUES ('c:other', '{\\"value\\":{\\"n\\":2,\\"s\\":\\"\\"}}')").run();
       process.stdout.write('locked\\n');
       setTimeout(() => { db.exec('COMMIT'); db.close(); }, 300);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.after(() => holder.kill());
  await once(holder.stdout, 'data');
  await c.put('second', { n: 3, s: '' });
  await once(holder, 'exit');
  assert.deepEqual((await c.all()).map(([k]) => k).sort(), ['first', 'other', 'second']);
});

test('the WAL reaches the database file by itself (the checkpointer thread), well below SQLite\'s own threshold', async (t) => {
  const path = tempDb(t);
  const store = Store.open(`sqlite://${path}`, silentLogger);
  t.after(() => store.close());
  const c = store.collection<Rec>('c');
  await Promise.all(Array.from({ length: 50 }, (_, i) => c.put(`k${i}`, { n: i, s: 'x' })));
  // The database file alone (without its -wal) holds what was checkpointed; wait for the thread.
  const copy = `${path}.copy`;
  let rows = 0;
  for (let i = 0; i < 50 && rows < 50; i++) {
    await new Promise((r) => setTimeout(r, 100));
    copyFileSync(path, copy);
    const db = new Database(copy, { readonly: true });
    try {
      rows = (db.prepare("SELECT count(*) AS n FROM keyv WHERE key LIKE 'c:%'").get() as { n: number }).n;
    } catch {
      rows = 0; // the table itself not checkpointed yet
    }
    db.close();
  }
  assert.equal(rows, 50);
});
