// Preloaded into the Herald process the bench starts (node --expose-gc --import <this file>): on
// SIGUSR2 it runs a full GC and writes process.memoryUsage() as JSON to $HERALD_BENCH_PROBE, so the
// bench can read the live heap independently of when V8 last collected. Herald's code is untouched.
import { writeFileSync } from 'node:fs';

const out = process.env['HERALD_BENCH_PROBE'];
if (out) {
  const write = (extra: Record<string, unknown>) => writeFileSync(out, JSON.stringify({ ...process.memoryUsage(), ...extra, at: Date.now() }));
  process.on('SIGUSR2', () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc) {
      gc();
      gc();
    }
    write({ gc: gc !== undefined });
  });
  write({ ready: true });
}
