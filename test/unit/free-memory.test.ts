// Giving glibc's free memory back (src/util/free-memory.ts): when the returner trims, and that on
// this machine's glibc a trim gives back the pages a storm of 64 KB buffers left free.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { FreeMemoryReturner, glibcAllocator, type Allocator } from '../../src/util/free-memory.js';

const MB = 1024 * 1024;

/** An allocator whose free bytes the test sets, counting the trims asked of it. */
function scripted(): Allocator & { free: number; trims: number } {
  const a = { free: 0, trims: 0, freeBytes: () => a.free, trim: () => (a.trims++, true) };
  return a;
}

test('trims once glibc holds the bound free, then only when more has been freed since', () => {
  const a = scripted();
  const r = new FreeMemoryReturner(a, 8 * MB, () => 0);
  a.free = 7 * MB;
  assert.equal(r.check(), undefined, 'under the bound: nothing to give back');
  a.free = 50 * MB;
  assert.deepEqual(r.check(), { free: 50 * MB, returned: 0 });
  assert.equal(a.trims, 1);
  assert.equal(r.check(), undefined, 'the same free chunks: already given back');
  a.free = 51 * MB;
  assert.equal(r.check(), undefined, 'less than a quarter of the bound freed since');
  a.free = 20 * MB;
  assert.equal(r.check(), undefined, 'a storm reusing the free chunks');
  a.free = 50 * MB;
  assert.ok(r.check(), 'the storm freed them again: those pages are resident again');
  assert.equal(a.trims, 2);
});

test('holding the bound free with nothing new, it still trims now and then (chunks reused and freed between checks)', () => {
  const a = scripted();
  const r = new FreeMemoryReturner(a, 8 * MB, () => 0);
  a.free = 30 * MB;
  r.check();
  let checks = 0;
  while (a.trims < 2 && checks < 100) {
    r.check();
    checks++;
  }
  assert.equal(a.trims, 2);
  assert.ok(checks > 10 && checks <= 30, `forced after ${checks} checks`);
});

test('a bound of 0 never trims', () => {
  const a = scripted();
  const r = new FreeMemoryReturner(a, 0, () => 0);
  a.free = 1024 * MB;
  for (let i = 0; i < 100; i++) r.check();
  assert.equal(a.trims, 0);
});

test('on glibc, the free pages a burst of 64 KB receive-sized buffers left between live ones go back to the system', async (t) => {
  const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;
  if (!glibc) return t.skip('not glibc');
  const allocator = await glibcAllocator();
  assert.equal(typeof allocator, 'object', `glibc ${glibc} but no allocator: ${String(allocator)}`);
  if (typeof allocator === 'string') return;
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  // Like a storm of datagrams: each 64 KB block (outside V8's heap, from malloc) followed by a small
  // allocation that lives on, so the blocks, once freed, cannot be trimmed from the top of the heap.
  const blocks: Buffer[] = [];
  const kept: Buffer[] = [];
  for (let i = 0; i < 1600; i++) {
    const b = Buffer.allocUnsafeSlow(64 * 1024);
    b.fill(i & 0xff); // resident
    blocks.push(b);
    kept.push(Buffer.allocUnsafeSlow(256));
  }
  const before = allocator.freeBytes();
  blocks.length = 0;
  // The backing stores are freed by the GC's array-buffer sweeper, possibly on a helper thread.
  for (let i = 0; i < 200 && allocator.freeBytes() - before < 64 * MB; i++) {
    gc();
    await tick();
  }
  assert.ok(allocator.freeBytes() - before >= 64 * MB, `glibc holds the freed blocks (${allocator.freeBytes() - before} B more free)`);
  const r = new FreeMemoryReturner(allocator, 8 * MB);
  const report = r.check();
  assert.ok(report, 'glibc holds more than the bound free: trimmed');
  assert.ok(report.returned >= 32 * MB, `${report.returned} B of RSS given back`);
  assert.equal(kept.length, 1600);
});
