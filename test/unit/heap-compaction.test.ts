// V8 old-space compaction after a storm (src/util/heap-compaction.ts): when it is asked for, and that
// on this Node a full GC with it on does give the half-empty pages back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { OldSpaceCompactor, oldSpace, type OldSpace } from '../../src/util/heap-compaction.js';

const MB = 1024 * 1024;

test('asked for once the old space holds the bound free (and a quarter of what it uses), off once compact', () => {
  let space: OldSpace = { committed: 40 * MB, used: 35 * MB };
  const flags: boolean[] = [];
  const c = new OldSpaceCompactor(8 * MB, () => space, (on) => flags.push(on));
  assert.equal(c.check(), undefined, '5 MB free: nothing to do');
  space = { committed: 230 * MB, used: 104 * MB };
  assert.equal(c.check(), 'on');
  assert.equal(c.check(), undefined, 'still on until a full GC compacts');
  space = { committed: 106 * MB, used: 104 * MB };
  assert.equal(c.check(), 'off');
  assert.deepEqual(flags, [true, false]);
  assert.equal(c.requests, 1);
});

test('a large heap with modest free space is left alone (a full compaction would copy it all for little)', () => {
  const flags: boolean[] = [];
  const c = new OldSpaceCompactor(8 * MB, () => ({ committed: 760 * MB, used: 700 * MB }), (on) => flags.push(on));
  assert.equal(c.check(), undefined);
  assert.deepEqual(flags, []);
});

test('stop() turns it off if it was on; a bound of 0 never asks', () => {
  const flags: boolean[] = [];
  const c = new OldSpaceCompactor(8 * MB, () => ({ committed: 100 * MB, used: 10 * MB }), (on) => flags.push(on));
  c.check();
  c.stop();
  assert.deepEqual(flags, [true, false]);
  const never = new OldSpaceCompactor(0, () => ({ committed: 1000 * MB, used: 10 * MB }), (on) => flags.push(on));
  assert.equal(never.check(), undefined);
  assert.deepEqual(flags, [true, false]);
});

test("on this Node, a full GC after it is asked for gives back the pages that long-lived objects left half empty", () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  // Like a storm: each long-lived object allocated next to short-lived ones that die later.
  const kept: { id: string; n: number[] }[] = [];
  let passing: { id: string; n: number[]; m: { k: number } }[] = [];
  for (let i = 0; i < 300_000; i++) {
    kept.push({ id: `kept-${i}`, n: [i] });
    passing.push({ id: `passing-${i}`, n: [i, i], m: { k: i } });
    if (passing.length > 40_000) passing = passing.slice(20_000);
  }
  passing.length = 0;
  gc();
  const before = oldSpace();
  assert.ok(before.committed - before.used > 16 * MB, `fragmented: ${before.committed - before.used} B free in old space`);
  const c = new OldSpaceCompactor(8 * MB);
  try {
    assert.equal(c.check(), 'on');
    gc();
    const after = oldSpace();
    assert.ok(after.committed - after.used < (before.committed - before.used) / 2, `free in old space ${before.committed - before.used} → ${after.committed - after.used} B`);
    assert.equal(c.check(), 'off');
  } finally {
    c.stop();
  }
  assert.equal(kept.length, 300_000);
});
