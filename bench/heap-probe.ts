// Preloaded into the Herald process the bench starts (node --expose-gc --import <this file>): on
// SIGUSR2 it writes process.memoryUsage() as JSON to $HERALD_BENCH_PROBE, with the V8 heap used
// after a forced full, compacting GC and the bytes allocated so far, so the bench can read the live heap
// independently of when V8 last collected and the allocation per message. Herald's code is untouched.
//
// Bytes allocated: V8 does not count them, but every byte allocated is either still in the heap or
// was freed by a GC, so allocated(t) = Σ over GCs (used before − used after) + used(t). The GC
// figures come from v8.GCProfiler (one record per GC, read and restarted at each probe).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import v8 from 'node:v8';

// With $HERALD_BENCH_ALLOC_PROFILE (bench --prof): a sampled profile of every allocation, collected
// or not (node --heap-prof keeps only what is still alive at exit), written there at exit.
const allocOut = process.env['HERALD_BENCH_ALLOC_PROFILE'];
if (allocOut) {
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.startSampling', { samplingInterval: 32768, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  process.once('exit', () => {
    // The in-process inspector answers synchronously, so this completes inside the exit handler.
    session.post('HeapProfiler.stopSampling', (err, r) => {
      if (!err) writeFileSync(allocOut, JSON.stringify(r.profile));
    });
  });
}

export interface GcRecord {
  cost: number;
  beforeGC: { heapStatistics: { usedHeapSize: number } };
  afterGC: { heapStatistics: { usedHeapSize: number } };
}

/** What the GCs a GCProfiler recorded freed on the V8 heap (allocated = freed + growth of the heap used). */
export function freedBy(records: readonly GcRecord[]): number {
  let freed = 0;
  for (const g of records) freed += g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize;
  return freed;
}

const out = process.env['HERALD_BENCH_PROBE'];
if (out) {
  let freed = 0;
  let gcs = 0;
  let gcMs = 0;
  let profiler = new v8.GCProfiler();
  profiler.start();
  /** `count`: false for the probe's own forced GCs (their bytes count, their time and number not). */
  const harvest = (count: boolean) => {
    const r = profiler.stop() as unknown as { statistics?: GcRecord[] } | undefined;
    const records = r?.statistics ?? [];
    freed += freedBy(records);
    for (const g of count ? records : []) {
      gcs++;
      gcMs += g.cost / 1000;
    }
    profiler = new v8.GCProfiler();
    profiler.start();
  };
  const newSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
  // Per V8 space: bytes committed and bytes resident (physical), where the heap's RSS lies.
  const spaces = () => Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { committed: s.space_size, used: s.space_used_size, resident: s.physical_space_size }]));
  const write = (extra: Record<string, unknown>) => writeFileSync(out, JSON.stringify({ ...process.memoryUsage(), ...extra, spaces: spaces(), at: Date.now() }));
  process.on('SIGUSR2', () => {
    harvest(true);
    const allocated = freed + process.memoryUsage().heapUsed;
    const gc = (globalThis as { gc?: (o?: { type: string; execution: string; flavor?: string }) => void }).gc;
    if (gc) {
      gc();
      // The collection V8 makes under memory pressure: it compacts, and gives the pages it empties
      // back to the system, so the RSS read after it is what the live objects need, not what the
      // last burst of garbage left committed.
      gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    }
    harvest(false);
    write({ gc: gc !== undefined, allocated, gcs, gcMs, newSpace: newSpace() });
  });
  write({ ready: true, allocated: process.memoryUsage().heapUsed, gcs: 0, gcMs: 0, newSpace: newSpace() });
}
