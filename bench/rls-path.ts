// The list server's own share of a member update, in process and without the network: the list load's
// shape (500 presentities, 100 lists of 50 shared members, each presentity in 10 lists) on a Hub with an
// in-memory provider, allowAll, no watcher info. Each round half the presentities change (documents
// parsed beforehand: the PIDF parse is the PUBLISH path's, not the list's), then every list that was told
// of a change renders its NOTIFY as the notifier does (currentTag, content, the body's UTF-8 bytes).
// Printed: CPU-µs per member update (process CPU over the timed rounds / (changes × lists holding them)).
// What the list load (bench/rls-load.ts) adds to this is the PUBLISH path, the SIP stack and the sockets.
//
//   node dist/bench/rls-path.js [--rounds N] [--repeat K]     (K timed runs; the lowest is printed last)
//
// Bounded: fixed counts, no I/O.
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import type { Binding, HeldSubscription } from '../src/events/subscription.js';
import { parsePidf, type PidfDocument } from '../src/formats/pidf.js';
import { Hub } from '../src/hub/hub.js';
import type { Provider, ProviderState } from '../src/hub/types.js';
import { silentLogger } from '../src/log.js';
import { allowAll } from '../src/policy/authorizer.js';
import { WatcherViews } from '../src/policy/view.js';
import type { ListSource } from '../src/rls/list-source.js';
import { ResourceListServer } from '../src/rls/rls.js';
import { freedBy, type GcRecord } from './heap-probe.js';
import { memberOf, pidf } from './rls-load.js';

const D = 'example.test';
const PRESENTITIES = 500;
const LISTS = 100;
const MEMBERS = 50;
const uri = (u: string): string => `sip:${u}@${D}`;

export interface RlsPathFigures {
  cpuUsPerUpdate: number;
  updates: number;
  notifies: number;
  bytesPerNotify: number;
  /** V8 heap bytes allocated per member update in the timed rounds (freed by GCs + growth of the heap used). */
  allocatedPerUpdate: number;
}

/** Bytes allocated while `fn` runs: what the GCs in between freed plus what the heap grew (bench/heap-probe.ts's rule). */
function allocatedDuring(fn: () => void): number {
  const profiler = new v8.GCProfiler();
  const used0 = process.memoryUsage().heapUsed;
  profiler.start();
  fn();
  const r = profiler.stop() as unknown as { statistics?: GcRecord[] } | undefined;
  return freedBy(r?.statistics ?? []) + process.memoryUsage().heapUsed - used0;
}

/** One setup, `rounds` warm-up rounds, then `rounds` timed ones. */
export async function runRlsPath(rounds = 30): Promise<RlsPathFigures> {
  const updates = new Map<string, (s: ProviderState) => void>();
  const provider: Provider = {
    name: 'bench',
    handles: (r) => r.startsWith('sip:m'),
    watch(r, update) {
      updates.set(r, update);
      update({ document: parsePidf(pidf(r, 'initial')) });
      return { stop: () => updates.delete(r) };
    },
  };
  const hub = new Hub();
  hub.register(provider);
  const listNumber = (u: string): number => Number(u.slice('sip:list'.length, u.indexOf('@')));
  const lists: ListSource = {
    has: (u) => u.startsWith('sip:list'),
    resolve: (u) =>
      Promise.resolve({
        service: { uri: u },
        members: Array.from({ length: MEMBERS }, (_, j) => ({ uri: uri(`m${memberOf(listNumber(u), j)}`), path: [] })),
        errors: [],
        loop: false,
      }),
    onChange: () => undefined,
  };
  const rls = new ResourceListServer(lists, hub, new WatcherViews(allowAll, { get: () => undefined, report: () => undefined }, () => true), { minIntervalMs: 0, maxNotifyBytes: 1_000_000, domain: D }, silentLogger);
  const pending = new Set<number>();
  const bindings: Binding[] = [];
  for (let l = 0; l < LISTS; l++) {
    let version = 0;
    const sub: HeldSubscription = { key: `call-${l}|tag`, resource: uri(`list${l}`), watcher: uri(`w${l}`), changed: () => pending.add(l), nextVersion: () => version++ };
    const a = await rls.admit({ ...sub, request: undefined, contentType: undefined, userAgent: undefined, subscription: sub });
    if (!a.ok) throw new Error(`list ${l} not admitted: ${a.status}`);
    bindings.push(a.binding);
  }
  let bytes = 0;
  let parts = 0;
  let notifies = 0;
  const render = (b: Binding): void => {
    b.currentTag?.();
    const c = b.content();
    bytes += Buffer.byteLength(c.body ?? '', 'utf8');
    notifies++;
  };
  for (const b of bindings) render(b);
  pending.clear();
  const docs: PidfDocument[][] = Array.from({ length: rounds * 2 }, (_, r) => Array.from({ length: PRESENTITIES }, (_, p) => parsePidf(pidf(uri(`m${p}`), `p${p}-r${r}`))));
  const run = (from: number, to: number): void => {
    for (let r = from; r < to; r++) {
      for (let p = r % 2; p < PRESENTITIES; p += 2) {
        updates.get(uri(`m${p}`))!({ document: docs[r]![p]! });
        parts += 10;
      }
      for (const l of pending) render(bindings[l]!);
      pending.clear();
    }
  };
  run(0, rounds);
  bytes = parts = notifies = 0;
  const c0 = process.cpuUsage();
  const allocated = allocatedDuring(() => run(rounds, rounds * 2));
  const c = process.cpuUsage(c0);
  for (const b of bindings) b.close();
  return { cpuUsPerUpdate: (c.user + c.system) / parts, updates: parts, notifies, bytesPerNotify: bytes / notifies, allocatedPerUpdate: allocated / parts };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (name: string, d: number): number => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? Number(process.argv[i + 1]) || d : d;
  };
  const rounds = Math.max(2, Math.min(200, arg('--rounds', 30)));
  const repeat = Math.max(1, Math.min(10, arg('--repeat', 3)));
  const all: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const f = await runRlsPath(rounds);
    all.push(f.cpuUsPerUpdate);
    console.log(`list path alone: ${f.cpuUsPerUpdate.toFixed(2)} CPU-µs and ${f.allocatedPerUpdate.toFixed(0)} bytes allocated per member update (${f.updates} updates in ${f.notifies} list NOTIFYs, ${f.bytesPerNotify.toFixed(0)} body bytes per NOTIFY)`);
  }
  console.log(`lowest of ${repeat}: ${Math.min(...all).toFixed(2)} CPU-µs per member update`);
}
