// Held subscriptions at scale (issue 9): how much one held subscription costs Herald, and whether every
// one of them is still notified on a change.
//
//   node dist/bench/held.js [--held N] [--presentities P] [--rate R] [--no-timer-j] [--no-pin]
//                           [--store sqlite|memory] [--snapshot DIR] [--max-old-space MB] [--settle S] [--prof DIR]
//   npm run bench -- --held N      (the same, after the alternating table)
//
// One fresh Herald (own process, own temp dir, free loopback UDP port, pinned to CPU 0 with the load
// generator on CPU 1), N SUBSCRIBEs (P presentities × N/P watchers, paced at R/s) in two halves, no
// publishing. Read after each half:
//   storm   2 s after the last initial NOTIFY (the SUBSCRIBE server transactions still held),
//   steady  after RFC 3261 Timer J (32 s over UDP: the transactions are gone),
// as growth of the process's RSS and PSS over the reading before the first storm (the lower of the
// forced-GC one and the settled one, see lowerOf in bench/proc.ts), and of the V8 heap
// used, each after a forced, compacting full GC (bench/heap-probe.ts), divided by the subscriptions
// held; and the second half's own growth after its Timer J divided by the subscriptions it added (the
// marginal cost: what a storm costs once — V8's young generation growing to its maximum, code, the
// allocator's high-water mark of the storm's transactions — is in the first half). Then, settled: RSS
// and PSS after --settle S seconds (90) idle with no GC forced, over a baseline read the same way (V8's
// memory reducer compacts the old generation when idle; the forced GC does not, and its RSS reading
// counts the storm's free old-space pages). Then one PUBLISH
// per presentity: every subscription must get one NOTIFY (the generator answers each and counts
// them). The RSS is extrapolated to 1,000,000 subscriptions with the marginal figure.
//
// Bounded: the SUBSCRIBE phase by count and time (2·N/R + 60 s), each drain, the generator's lifetime;
// stops what it started by pid, also on SIGINT/SIGTERM. Loopback only. Prints; no assertions.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Loadgen } from './loadgen-client.js';
import { cpuSeconds, freeUdpPort, haveCommand, lowerOf, machineBusySeconds, memory, sleep, type MemoryReading } from './proc.js';
import { startHerald, type InternalMemory, type Server } from './targets.js';

/** RFC 3261 Timer J over UDP (64·T1), and a margin for the server's once-a-second sweep. */
const TIMER_J_MS = 32_000 + 2_000;
const TARGET = 1_000_000;

export interface HeldOptions {
  held: number;
  presentities: number;
  ratePerS: number;
  timerJ: boolean;
  pin: boolean;
  store: 'sqlite' | 'memory';
  /** Where to write V8 heap snapshots (before, steady) for a look at what a subscription holds. */
  snapshotDir: string | undefined;
  maxOldSpaceMb: number | undefined;
  /** Herald's V8 CPU profile written here (read with dist/bench/profile-top.js): where a SUBSCRIBE's CPU goes. */
  profDir?: string | undefined;
  /**
   * Seconds left idle after each half's Timer J reading, then RSS/PSS read again without a forced GC:
   * what the process settles at on its own (V8's memory reducer compacts and returns pages when idle).
   */
  settleS: number;
}

export interface HeldFigures {
  subscriptions: number;
  failed: number;
  subscribeCpuUs: number;
  storm: PerSub;
  steady: PerSub | undefined;
  /** The second half's growth per subscription it added (after Timer J): the marginal cost. */
  marginal: PerSub | undefined;
  /** RSS at the end: after the last settling wait, else after the last Timer J. */
  rss: number;
  /** The same after the settling wait, without a forced GC (RSS/PSS only; live heap as read before it). */
  settled?: PerSub | undefined;
  settledMarginal?: PerSub | undefined;
  settleS?: number;
  notified: number;
  expectedNotifies: number;
  publishes: number;
  baseRss: number;
}

interface PerSub {
  rss: number;
  pss: number;
  live: number | undefined;
  /** V8's committed heap and the memory outside it, per subscription (where RSS goes besides live objects). */
  heapTotal: number | undefined;
  external: number | undefined;
}

function fmt(x: number | undefined, digits = 0): string {
  if (x === undefined || !Number.isFinite(x)) return '—';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function perSub(m0: MemoryReading, i0: InternalMemory | undefined, m: MemoryReading, i: InternalMemory | undefined, n: number): PerSub {
  const d = (k: 'bytes' | 'heapTotal' | 'external') => (i?.[k] !== undefined && i0?.[k] !== undefined ? (i[k] - i0[k]) / n : undefined);
  return { rss: (m.rss - m0.rss) / n, pss: (m.pssTree - m0.pssTree) / n, live: d('bytes'), heapTotal: d('heapTotal'), external: d('external') };
}

/**
 * Where the process's RSS lies (/proc/PID/smaps): the [heap] (malloc's main arena), anonymous
 * mappings by size (V8's pages are 256 KB pieces; malloc's thread arenas are 64 MB reservations),
 * and files (code, the SQLite database and its WAL index). MB each.
 */
export function rssBreakdown(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return out;
  }
  let kind = '';
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const size = (parseInt(m[2]!, 16) - parseInt(m[1]!, 16)) / 1024;
      const name = m[3]!.trim();
      kind = name === '[heap]' ? 'malloc heap' : name.startsWith('/') ? (name.includes('sqlite') ? 'sqlite files' : 'files') : name.startsWith('[') ? 'other' : size <= 1024 ? 'anon ≤ 1 MB (V8 pages)' : size >= 60 * 1024 ? 'anon ≥ 60 MB (malloc arenas, V8 reservations)' : 'anon 1–60 MB';
      continue;
    }
    const r = /^Rss:\s+(\d+) kB/.exec(line);
    if (r) out[kind] = (out[kind] ?? 0) + Number(r[1]) / 1024;
  }
  for (const k of Object.keys(out)) out[k] = Math.round(out[k]! * 10) / 10;
  return out;
}

/** Each V8 space's resident MB, with committed and used in brackets (where V8's share of RSS lies). */
function spaceSummary(i: InternalMemory | undefined): string {
  const mb = (x: number) => fmt(x / 2 ** 20, 1);
  return Object.entries(i?.spaces ?? {})
    .filter(([, v]) => v.committed > 0)
    .map(([k, v]) => `${k} ${mb(v.resident)} (${mb(v.committed)}, ${mb(v.used)})`)
    .join('; ');
}

/** Memory after a forced full GC: the heap probe's reading first, then RSS/PSS (so the GC's release counts). */
async function reading(s: Server): Promise<[MemoryReading, InternalMemory | undefined]> {
  const i = await s.internalMemory();
  // V8 hands emptied pages back from a background task: a moment for it before RSS is read.
  await sleep(1_000);
  return [memory(s.pid), i];
}

/** Asks Herald (started with --heapsnapshot-signal=SIGUSR1) for a heap snapshot; waits for the file. */
async function snapshot(server: Server, log: (s: string) => void, what: string): Promise<void> {
  process.kill(server.pid, 'SIGUSR1');
  // Writing one takes a while for a large heap; the figures after it are read once it is done.
  await sleep(8_000);
  log(`heap snapshot (${what}) asked for`);
}

export async function runHeldBench(o: HeldOptions, log: (s: string) => void = (s) => console.log(`[held ${new Date().toISOString().slice(11, 19)}] ${s}`)): Promise<HeldFigures | undefined> {
  const pin = o.pin && cpus().length >= 2 && haveCommand('taskset');
  const dir = mkdtempSync(join(tmpdir(), 'herald-held-'));
  const watchersPer = Math.max(1, Math.round(o.held / o.presentities));
  const total = watchersPer * o.presentities;
  let server: Server | undefined;
  let gen: Loadgen | undefined;
  const stopAll = () => {
    gen?.killNow();
    server?.killNow();
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = () => {
    stopAll();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const port = await freeUdpPort();
    server = startHerald({
      dir,
      port,
      cpu: pin ? 0 : undefined,
      store: o.store,
      ...(o.profDir ? { cpuProfDir: o.profDir } : {}),
      // One generator address holds them all: the per-source bounds (a defence, issue 16) lifted, and
      // overload control's delay bound raised so a full GC of a large heap does not shed SUBSCRIBEs.
      config: [
        ['limits', 'max_subscriptions_per_source', String(Math.max(total * 2, 20_000))],
        // ...and the bound on publications per source, or past 5,000 presentities the PUBLISHes get 403s.
        ['limits', 'max_publications_per_source', String(Math.max(o.presentities * 2, 5_000))],
        ['limits', 'max_event_loop_delay', '10000'],
        ['limits', 'max_pending_requests', String(Math.max(2000, total))],
      ],
      nodeArgs: [...(o.snapshotDir ? ['--heapsnapshot-signal=SIGUSR1', `--diagnostic-dir=${o.snapshotDir}`] : []), ...(o.maxOldSpaceMb ? [`--max-old-space-size=${o.maxOldSpaceMb}`] : [])],
    });
    await server.ready(20_000);
    const s = server;
    // The generator outlives every wait: the storms, two Timer J waits, three settling waits, the PUBLISHes.
    const lifetime = (total / o.ratePerS) * 2000 + 420_000 + 3 * o.settleS * 1000;
    gen = Loadgen.start(pin ? 1 : undefined, lifetime);
    const ready = await gen.call({ type: 'start', target: { host: '127.0.0.1', port }, domain: 'example.test', sockets: 8 }, 10_000);
    if (ready.type !== 'ready') throw new Error('load generator did not start');
    log(`herald pid ${s.pid} on udp 127.0.0.1:${port}${pin ? ', pinned to CPU 0, generator to CPU 1' : ''}; store ${o.store}; ${fmt(total)} subscriptions (${fmt(o.presentities)} × ${fmt(watchersPer)}) at ${fmt(o.ratePerS)}/s`);
    await sleep(1_000);
    if (o.snapshotDir) await snapshot(s, log, 'before');
    const [m0, i0] = await reading(s);
    log(`RSS by kind of mapping (MB) before: ${JSON.stringify(rssBreakdown(s.pid))}`);
    // The settled figures' baseline is settled too (start-up's garbage pages, released when idle).
    let settledHalf: MemoryReading | undefined;
    if (o.settleS > 0) {
      await sleep(o.settleS * 1000);
      settledHalf = memory(s.pid);
      log(`settled before (${o.settleS} s idle): RSS ${fmt(settledHalf.rss / 2 ** 20)} MB; by kind of mapping (MB): ${JSON.stringify(rssBreakdown(s.pid))}`);
    }
    const settled0 = settledHalf ?? m0;
    const base = lowerOf(m0, settled0);
    const cpu0 = cpuSeconds([s.pid]);
    const busy0 = machineBusySeconds();
    const t0 = performance.now();
    // In two halves, each left past Timer J: the growth of the second half alone is the marginal
    // cost of a held subscription, without what any storm costs once (young generation, code, the
    // allocator's high-water mark of the storm's transactions).
    const halves = [
      { prefix: 'ha', presentities: Math.ceil(o.presentities / 2) },
      { prefix: 'hb', presentities: Math.floor(o.presentities / 2) },
    ].filter((h) => h.presentities > 0);
    let held = 0;
    let failed = 0;
    let storm: PerSub | undefined;
    let steady: PerSub | undefined;
    let marginal: PerSub | undefined;
    let half: [MemoryReading, InternalMemory | undefined] | undefined;
    let settled: PerSub | undefined;
    let settledMarginal: PerSub | undefined;
    for (const [k, h] of halves.entries()) {
      const at = performance.now();
      const n0 = held;
      const sub = await gen.phase({ kind: 'subscribe', prefix: h.prefix, presentities: h.presentities, watchersPer, window: 200, ratePerS: o.ratePerS, maxMs: ((h.presentities * watchersPer) / o.ratePerS) * 2000 + 60_000, drainMs: 5_000 });
      held += sub.ok;
      failed += sub.sent - sub.ok;
      log(`half ${k + 1}: ${fmt(sub.ok)} subscriptions held, ${fmt(sub.sent - sub.ok)} failed (${JSON.stringify(sub.statuses)}), ${fmt(sub.notifies)} initial NOTIFYs, in ${fmt(sub.wallMs / 1000, 1)} s`);
      await sleep(1_600);
      storm = perSub(base, i0, ...(await reading(s)), Math.max(1, held));
      log(`storm (+2 s): ${fmt(storm.pss)} B PSS, ${fmt(storm.rss)} B RSS, ${fmt(storm.live)} B live heap per subscription held (V8 heap committed ${fmt(storm.heapTotal)} B, outside it ${fmt(storm.external)} B)`);
      if (!o.timerJ) continue;
      await sleep(Math.max(0, at + sub.requestMs + TIMER_J_MS - performance.now()));
      const r = await reading(s);
      steady = perSub(base, i0, ...r, Math.max(1, held));
      if (half && held > n0) marginal = perSub(half[0], half[1], ...r, held - n0);
      half = r;
      log(`after Timer J: ${fmt(steady.pss)} B PSS, ${fmt(steady.rss)} B RSS, ${fmt(steady.live)} B live heap per subscription held (V8 heap committed ${fmt(steady.heapTotal)} B, outside it ${fmt(steady.external)} B; RSS ${fmt(r[0].rss / 2 ** 20)} MB in all)${marginal ? `; this half alone: ${fmt(marginal.pss)} B PSS, ${fmt(marginal.rss)} B RSS, ${fmt(marginal.live)} B live heap each` : ''}`);
      log(`RSS by kind of mapping (MB): ${JSON.stringify(rssBreakdown(s.pid))}`);
      log(`V8 spaces, MB resident (committed, used): ${spaceSummary(r[1])}`);
      if (o.settleS > 0) {
        await sleep(o.settleS * 1000);
        const m = memory(s.pid);
        settled = perSub(settled0, i0, m, r[1], Math.max(1, held));
        if (settledHalf && n0 > 0 && held > n0) settledMarginal = perSub(settledHalf, undefined, m, undefined, held - n0);
        settledHalf = m;
        log(`settled (${o.settleS} s idle, no forced GC): ${fmt(settled.pss)} B PSS, ${fmt(settled.rss)} B RSS per subscription held (RSS ${fmt(m.rss / 2 ** 20)} MB in all)${settledMarginal ? `; this half alone: ${fmt(settledMarginal.pss)} B PSS, ${fmt(settledMarginal.rss)} B RSS each` : ''}; by kind of mapping (MB): ${JSON.stringify(rssBreakdown(s.pid))}`);
      }
    }
    const cpuS = cpuSeconds([s.pid]) - cpu0;
    log(`${fmt(held)} held in all; ${fmt((cpuS * 1e6) / Math.max(1, held), 1)} server CPU-µs per SUBSCRIBE (Timer J waits included); machine ${fmt((machineBusySeconds() - busy0) / ((performance.now() - t0) / 1000), 2)} of ${cpus().length} cores busy`);
    if (o.snapshotDir) await snapshot(s, log, 'steady');
    // A change for everybody: one PUBLISH per presentity; each of its watchers must get a NOTIFY.
    let notified = 0;
    let publishes = 0;
    for (const h of halves) {
      const pub = await gen.phase({ kind: 'publish', prefix: h.prefix, presentities: h.presentities, count: h.presentities, window: Math.min(h.presentities, 50), maxMs: 180_000, drainMs: 10_000 });
      notified += pub.notifies;
      publishes += pub.ok;
      log(`${fmt(pub.ok)} of ${fmt(h.presentities)} PUBLISHes answered 200 (${JSON.stringify(pub.statuses)}); ${fmt(pub.notifies)} NOTIFYs (each answered 200 by the generator), in ${fmt(pub.wallMs / 1000, 1)} s`);
    }
    if (!s.alive) throw new Error(`herald exited: ${s.output.slice(-2000)}`);
    return { subscriptions: held, failed, subscribeCpuUs: (cpuS * 1e6) / Math.max(1, held), storm: storm!, steady, marginal, notified, expectedNotifies: held, publishes, baseRss: m0.rss, rss: settledHalf?.rss ?? half?.[0].rss ?? m0.rss, settled, settledMarginal, settleS: o.settleS };
  } catch (e) {
    log(`FAILED: ${(e as Error).message}`);
    return undefined;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await gen?.stop();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The figures and their extrapolation to 1,000,000 subscriptions on this machine. */
export function printHeld(f: HeldFigures): void {
  const per = f.settledMarginal ?? f.marginal ?? f.steady ?? f.storm;
  const projected = f.rss + per.rss * (TARGET - f.subscriptions);
  const row = (label: string, x: PerSub) => `  ${label.padEnd(38)}${fmt(x.pss).padStart(10)} ${fmt(x.rss).padStart(10)} ${fmt(x.live).padStart(10)}  bytes`;
  const lines = [
    '',
    `Held subscriptions: ${fmt(f.subscriptions)} held (${fmt(f.failed)} SUBSCRIBE failed), ${fmt(f.subscribeCpuUs, 1)} server CPU-µs per SUBSCRIBE`,
    `  per subscription${' '.repeat(22)}${'PSS'.padStart(10)} ${'RSS'.padStart(10)} ${'live heap'.padStart(10)}`,
    row('storm (+2 s), over all held', f.storm),
    ...(f.steady ? [row('after Timer J, over all held', f.steady)] : []),
    ...(f.marginal ? [row('after Timer J, second half alone', f.marginal)] : []),
    ...(f.settled ? [row(`settled (${f.settleS} s idle), over all held`, f.settled)] : []),
    ...(f.settledMarginal ? [row(`settled (${f.settleS} s idle), second half alone`, f.settledMarginal)] : []),
    `  one PUBLISH per presentity: ${fmt(f.notified)} NOTIFYs for ${fmt(f.expectedNotifies)} subscriptions${f.notified >= f.expectedNotifies ? ' (every one notified)' : ''}`,
    `  extrapolated to ${fmt(TARGET)} subscriptions: ${fmt(projected / 2 ** 30, 2)} GB RSS = ${fmt(f.rss / 2 ** 20)} MB at ${fmt(f.subscriptions)} + ${fmt(TARGET - f.subscriptions)} × ${fmt(per.rss)} B (${f.settledMarginal ? 'the second half\'s settled RSS per subscription' : f.marginal ? 'the second half\'s RSS per subscription' : 'RSS per subscription'}); this machine has ${fmt(totalmem() / 2 ** 30, 1)} GB`,
  ];
  console.log(lines.join('\n'));
}

function parseArgs(argv: string[]): HeldOptions {
  const o: HeldOptions = { held: 100_000, presentities: 10_000, ratePerS: 2_000, timerJ: true, pin: true, store: 'sqlite', snapshotDir: undefined, maxOldSpaceMb: undefined, settleS: 90 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = (lo: number, hi: number) => Math.max(lo, Math.min(hi, Number(argv[++i]) || lo));
    if (a === '--held') o.held = num(100, 2_000_000);
    else if (a === '--presentities') o.presentities = num(1, 1_000_000);
    else if (a === '--rate') o.ratePerS = num(10, 20_000);
    else if (a === '--no-timer-j') o.timerJ = false;
    else if (a === '--no-pin') o.pin = false;
    else if (a === '--store') {
      const v = argv[++i];
      if (v !== 'sqlite' && v !== 'memory') throw new Error('--store takes sqlite or memory');
      o.store = v;
    } else if (a === '--snapshot') o.snapshotDir = argv[++i];
    else if (a === '--max-old-space') o.maxOldSpaceMb = num(256, 32_768);
    else if (a === '--prof') o.profDir = argv[++i];
    else if (a === '--settle') o.settleS = num(0, 600);
    else throw new Error(`unknown option ${a}`);
  }
  o.presentities = Math.min(o.presentities, o.held);
  return o;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const o = parseArgs(process.argv.slice(2));
  void runHeldBench(o).then((f) => {
    if (f) printHeld(f);
    else process.exitCode = 1;
  });
}
