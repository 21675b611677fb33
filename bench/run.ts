// Herald's load bench: `npm run bench` (builds, then `node dist/bench/run.js`).
//
//   node dist/bench/run.js [--runs N] [--only herald|kamailio] [--no-pin] [--quick] [--prof] [--no-rls] [--no-standards] [--no-cluster] [--no-overload]
//                          [--herald-store sqlite|memory] [--kamailio-children N] [--kamailio-maxbuffer BYTES]
//                          [--realistic] [--realistic-only] [--held N]
//
// The load of issue 9, both servers started fresh (own process, own temp dir, free loopback UDP port)
// and measured alternately in the same run: Herald, Kamailio, Herald, Kamailio… --runs N repeats the
// rounds and the table shows medians. Each server is pinned to CPU 0 and the load generator
// (loadgen.ts, a separate process) to CPU 1 (taskset; --no-pin leaves placement to the kernel).
//
//   1. fan-out: 50 presentities × 10 watchers (500 subscriptions), then every presentity publishes in
//      a closed loop (PUBLISH with SIP-If-Match, open/closed alternating, the next one as soon as its
//      200 arrives; one Call-ID per presentity, the branch built from the CSeq) for 15 s: NOTIFY/s,
//      PUBLISH/s, CPU-µs per NOTIFY and per PUBLISH from the server's own CPU time (/proc, every
//      process of its tree), publish→NOTIFY latency, and for Herald the bytes allocated on the V8 heap
//      per NOTIFY (bench/heap-probe.ts). Then the same PUBLISHes paced at half of Herald's closed-loop
//      rate of the round (latency p50/p99 at half load, both servers at the same rate), and PUBLISH to
//      presentities nobody watches (CPU per PUBLISH alone).
//   2. held subscriptions, on a fresh server: 10,000 SUBSCRIBEs at 1,000/s, no publishing. Memory
//      growth per subscription 2 s after the last initial NOTIFY (the storm: SUBSCRIBE transactions
//      still held) and after RFC 3261 Timer J (32 s over UDP: the transactions are gone), as RSS/PSS
//      of the process tree over the idle server's lower reading (after a forced GC, or settled; see
//      lowerOf in bench/proc.ts) and, for Herald, as V8 heap after a forced GC (Kamailio: shared memory in
//      use, kamcmd core.shmmem); then "settled": RSS/PSS after 45 s more with nothing to do, no GC
//      forced, over a baseline read the same way before the storm (what each server gives back on its
//      own: V8 compacts and returns its pages when idle, not in a forced GC).
//   3. --realistic: 5,000 presentities × 10 watchers, one PUBLISH per presentity every 2 s (2,500/s).
//   4. --held N (Herald alone, bench/held.ts): N held subscriptions in two halves, each past Timer J,
//      memory per subscription (over all, and the second half alone), one PUBLISH per presentity
//      with every NOTIFY counted, and the RSS extrapolated to 1,000,000 subscriptions.
//
// --quick (for development): fan-out 5 s, paced 3 s, 2,000 held subscriptions measured at the storm
// only (no Timer J wait), no RLS figure. Every phase is bounded in count and time; a run has a global
// deadline. --prof writes Herald's V8 CPU profile to bench/results/prof/. Traffic goes to 127.0.0.1
// only; the bench stops what it started, by pid, also on SIGINT/SIGTERM. Prints a table and writes
// bench/results/latest.json. No assertions.
import { runClusterBench } from './cluster.js';
import { runRlsBench } from './rls.js';
import { runRlsLoadBench } from './rls-load.js';
import { runStandardsBench } from './standards.js';
import { runOverloadBench } from './overload.js';
import { printHeld, runHeldBench } from './held.js';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Loadgen } from './loadgen-client.js';
import type { PhaseResult } from './protocol.js';
import { cpuSeconds, freeUdpPort, haveCommand, lowerOf, machineBusySeconds, memory, sleep, udpReceiveBufferDrops, type MemoryReading } from './proc.js';
import { kamailioMissing, REPO_ROOT, startHerald, startKamailio, type InternalMemory, type Server } from './targets.js';

const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');
/** RFC 3261 Timer J over UDP (64·T1), and a margin for the server's once-a-second sweep. */
const TIMER_J_MS = 32_000 + 2_000;
/** Idle time before a "settled" reading (no forced GC): V8's memory reducer acts within it. */
const SETTLE_MS = 45_000;

// ---- options -----------------------------------------------------------------------------------

interface Options {
  runs: number;
  only: 'herald' | 'kamailio' | undefined;
  pin: boolean;
  quick: boolean;
  prof: boolean;
  realistic: boolean;
  /** --realistic-only: the realistic load alone (no fan-out or held phases). */
  realisticOnly: boolean;
  kamailioChildren: number;
  heraldStore: 'sqlite' | 'memory';
  /** Kamailio's maxbuffer (UDP receive buffer probing limit), bytes; undefined: its default. */
  kamailioMaxBuffer: number | undefined;
  /** --held N: afterwards, N held subscriptions on one Herald (bench/held.ts), extrapolated to 1M. */
  held: number | undefined;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { runs: 1, only: undefined, pin: true, quick: false, prof: false, realistic: false, realisticOnly: false, kamailioChildren: 4, heraldStore: 'sqlite', kamailioMaxBuffer: undefined, held: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--runs') o.runs = Math.max(1, Math.min(5, Number(argv[++i]) || 1));
    else if (a === '--only') {
      const v = argv[++i];
      if (v !== 'herald' && v !== 'kamailio') throw new Error('--only takes herald or kamailio');
      o.only = v;
    } else if (a === '--no-pin') o.pin = false;
    else if (a === '--quick') o.quick = true;
    else if (a === '--prof') o.prof = true;
    else if (a === '--realistic') o.realistic = true;
    else if (a === '--realistic-only') o.realistic = o.realisticOnly = true;
    else if (a === '--kamailio-children') o.kamailioChildren = Math.max(1, Math.min(16, Number(argv[++i]) || 4));
    else if (a === '--kamailio-maxbuffer') o.kamailioMaxBuffer = Math.max(65536, Math.min(64 * 2 ** 20, Number(argv[++i]) || 262144));
    else if (a === '--herald-store') {
      const v = argv[++i];
      if (v !== 'sqlite' && v !== 'memory') throw new Error('--herald-store takes sqlite or memory');
      o.heraldStore = v;
    } else if (a === '--held') o.held = Math.max(100, Math.min(2_000_000, Number(argv[++i]) || 100_000));
    else if (a === '--no-rls') continue; // read in main(): skip the RLS figure
    else if (a === '--no-standards') continue; // read in main(): skip the issue-15 figures
    else if (a === '--no-cluster') continue; // read in main(): skip the issue-10 cluster figure (bench/cluster.ts)
    else if (a === '--no-overload') continue; // read in main(): skip the shedding sweep (bench/overload.ts)
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

interface Plan {
  fanPresentities: number;
  fanWatchers: number;
  fanMs: number;
  pacedMs: number;
  unwatchedMs: number;
  held: number;
  heldPresentities: number;
  heldRatePerS: number;
  timerJ: boolean;
  realisticPresentities: number;
  realisticMs: number;
}

function planFor(o: Options): Plan {
  return o.quick
    ? { fanPresentities: 50, fanWatchers: 10, fanMs: 5_000, pacedMs: 3_000, unwatchedMs: 3_000, held: 2_000, heldPresentities: 200, heldRatePerS: 1_000, timerJ: false, realisticPresentities: 1_000, realisticMs: 10_000 }
    : { fanPresentities: 50, fanWatchers: 10, fanMs: 15_000, pacedMs: 5_000, unwatchedMs: 5_000, held: 10_000, heldPresentities: 1_000, heldRatePerS: 1_000, timerJ: true, realisticPresentities: 5_000, realisticMs: 20_000 };
}

// ---- bookkeeping of what we started, for exit handlers -----------------------------------------

const started = { servers: new Set<Server>(), loadgens: new Set<Loadgen>(), dirs: new Set<string>() };

function killEverything(): void {
  for (const l of started.loadgens) l.killNow();
  for (const s of started.servers) s.killNow();
  for (const d of started.dirs) rmSync(d, { recursive: true, force: true });
}

process.on('exit', killEverything);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    killEverything();
    process.exit(130);
  });
}


// ---- one server session ------------------------------------------------------------------------

type Name = 'herald' | 'kamailio';

interface Mark {
  cpu: number;
  drops: number;
  machine: number;
  internal: InternalMemory | undefined;
}

/** The figures of one phase, flat (so rounds reduce to medians key by key). */
function phaseFigures(k: string, r: PhaseResult, start: Mark, end: Mark, f: Record<string, number>): void {
  const wallS = r.wallMs / 1000;
  const cpuS = end.cpu - start.cpu;
  f[`${k}.sent`] = r.sent;
  f[`${k}.ok`] = r.ok;
  f[`${k}.failed`] = r.sent - r.ok;
  f[`${k}.retransmits`] = r.retransmits;
  f[`${k}.notifies`] = r.notifies;
  f[`${k}.notify_retransmits`] = r.notifyRetransmits;
  f[`${k}.ok_per_s`] = r.requestMs > 0 ? (r.ok * 1000) / r.requestMs : 0;
  f[`${k}.notify_per_s`] = r.notifyMs > 0 ? (r.notifies * 1000) / r.notifyMs : 0;
  f[`${k}.server_cpu_s`] = cpuS;
  f[`${k}.server_cpu_util`] = wallS > 0 ? cpuS / wallS : 0;
  f[`${k}.generator_cpu_util`] = wallS > 0 ? r.generatorCpuS / wallS : 0;
  f[`${k}.other_cores`] = wallS > 0 ? Math.max(0, end.machine - start.machine - cpuS - r.generatorCpuS) / wallS : 0;
  f[`${k}.udp_drops`] = end.drops - start.drops;
  if (r.ok > 0) {
    f[`${k}.cpu_us_per_ok`] = (cpuS * 1e6) / r.ok;
    f[`${k}.notifies_per_ok`] = r.notifies / r.ok;
  }
  if (r.notifies > 0) f[`${k}.cpu_us_per_notify`] = (cpuS * 1e6) / r.notifies;
  if (r.latency) {
    f[`${k}.latency_p50_ms`] = r.latency.p50;
    f[`${k}.latency_p99_ms`] = r.latency.p99;
    f[`${k}.latency_max_ms`] = r.latency.max;
  }
  const a0 = start.internal?.allocated;
  const a1 = end.internal?.allocated;
  if (a0 !== undefined && a1 !== undefined) {
    if (r.notifies > 0) f[`${k}.alloc_bytes_per_notify`] = (a1 - a0) / r.notifies;
    if (r.ok > 0) f[`${k}.alloc_bytes_per_ok`] = (a1 - a0) / r.ok;
    if (start.internal?.gcs !== undefined && end.internal?.gcs !== undefined) f[`${k}.gcs`] = end.internal.gcs - start.internal.gcs;
    if (start.internal?.gcMs !== undefined && end.internal?.gcMs !== undefined && cpuS > 0) f[`${k}.gc_share`] = (end.internal.gcMs - start.internal.gcMs) / 1000 / cpuS;
    if (end.internal?.newSpace !== undefined) f[`${k}.new_space_mb`] = end.internal.newSpace / 2 ** 20;
  }
}

interface Session {
  server: Server;
  gen: Loadgen;
  pids: number[];
  mark: () => Promise<Mark>;
}

/** Starts one server and a load generator, runs `body`, stops both (by pid) whatever happens. */
async function withServer(name: Name, o: Options, lifetimeMs: number, log: (s: string) => void, body: (s: Session) => Promise<void>): Promise<string | undefined> {
  const pin = o.pin && cpus().length >= 2 && haveCommand('taskset');
  const dir = mkdtempSync(join(tmpdir(), `herald-bench-${name}-`));
  started.dirs.add(dir);
  let server: Server | undefined;
  let gen: Loadgen | undefined;
  let error: string | undefined;
  try {
    const port = await freeUdpPort();
    if (name === 'herald') {
      const profDir = o.prof ? join(RESULTS_DIR, 'prof') : undefined;
      if (profDir) mkdirSync(profDir, { recursive: true });
      server = startHerald({ dir, port, cpu: pin ? 0 : undefined, store: o.heraldStore, ...(profDir ? { cpuProfDir: profDir } : {}) });
    } else {
      server = startKamailio({ dir, port, cpu: pin ? 0 : undefined, children: o.kamailioChildren, shmMb: 4096, maxBuffer: o.kamailioMaxBuffer });
    }
    started.servers.add(server);
    await server.ready(20_000);
    gen = Loadgen.start(pin ? 1 : undefined, lifetimeMs);
    started.loadgens.add(gen);
    const ready = await gen.call({ type: 'start', target: { host: '127.0.0.1', port }, domain: 'example.test', sockets: 8 }, 10_000);
    if (ready.type !== 'ready') throw new Error('load generator did not start');
    log(`${name}: pid ${server.pid} (${server.pids.length} process${server.pids.length > 1 ? 'es' : ''}) on udp 127.0.0.1:${port}, generator pid ${gen.pid}${pin ? ', pinned to CPUs 0 / 1' : ''}`);
    await sleep(500);
    const s = server;
    const pids = s.pids;
    await body({
      server: s,
      gen,
      pids,
      mark: async () => {
        const internal = await s.internalMemory();
        return { cpu: cpuSeconds(pids), drops: udpReceiveBufferDrops(), machine: machineBusySeconds(), internal };
      },
    });
    if (!s.alive) error = `${name} exited during the run: ${s.output.slice(-2000)}`;
  } catch (e) {
    error = (e as Error).message;
    log(`${name}: FAILED: ${error}`);
  } finally {
    if (gen) {
      await gen.stop();
      started.loadgens.delete(gen);
    }
    if (server) {
      await server.stop();
      started.servers.delete(server);
      // Errors and warnings the server printed (Herald logs at warn; Kamailio at debug=1), a few.
      const bad = server.output.split('\n').filter((l) => /ERROR|CRITICAL|"level":[456]\d/.test(l));
      if (bad.length > 0) log(`${name}: ${bad.length} error/warning line(s) in its output, the last ones:\n${bad.slice(-6).map((l) => l.slice(0, 400)).join('\n')}`);
    }
    rmSync(dir, { recursive: true, force: true });
    started.dirs.delete(dir);
  }
  return error;
}

/**
 * Session 1: the fan-out load. `pacedRate` is the PUBLISH rate of the half-load phase (Herald's own
 * closed-loop rate halved when undefined); returns the closed-loop PUBLISH rate measured.
 */
async function fanOut(name: Name, o: Options, plan: Plan, f: Record<string, number>, pacedRate: number | undefined, log: (s: string) => void): Promise<number | undefined> {
  let closedRate: number | undefined;
  const err = await withServer(name, o, 120_000, log, async (s) => {
    const sub = await s.gen.phase({ kind: 'subscribe', prefix: 'f', presentities: plan.fanPresentities, watchersPer: plan.fanWatchers, window: 100, maxMs: 20_000, drainMs: 3_000 });
    if (sub.ok < plan.fanPresentities * plan.fanWatchers) log(`${name}: only ${sub.ok} of ${sub.sent} fan-out subscriptions accepted`);
    if (sub.resubscribed > 0) log(`${name}: ${sub.resubscribed} fan-out SUBSCRIBEs sent again after a 503 or no answer`);
    f['fan.subscriptions'] = sub.ok;

    let m0 = await s.mark();
    const closed = await s.gen.phase({ kind: 'publish', prefix: 'f', presentities: plan.fanPresentities, count: 2_000_000, window: plan.fanPresentities, maxMs: plan.fanMs, drainMs: 3_000 });
    let m1 = await s.mark();
    phaseFigures('fan', closed, m0, m1, f);
    closedRate = f['fan.ok_per_s'];
    log(`${name}: closed loop ${closed.ok} PUBLISH, ${closed.notifies} NOTIFY, ${fmt(f['fan.notify_per_s'])} NOTIFY/s, ${fmt(f['fan.cpu_us_per_notify'], 1)} CPU-µs/NOTIFY`);

    const rate = pacedRate ?? (closedRate !== undefined ? closedRate / 2 : undefined);
    if (rate && rate > 0) {
      m0 = await s.mark();
      const paced = await s.gen.phase({ kind: 'publish', prefix: 'f', presentities: plan.fanPresentities, count: Math.ceil((rate * plan.pacedMs) / 1000), window: plan.fanPresentities, ratePerS: rate, maxMs: plan.pacedMs + 2_000, drainMs: 3_000 });
      m1 = await s.mark();
      phaseFigures('paced', paced, m0, m1, f);
      f['paced.rate'] = rate;
      log(`${name}: paced at ${fmt(rate)} PUBLISH/s: latency p50 ${fmt(f['paced.latency_p50_ms'], 2)} ms, p99 ${fmt(f['paced.latency_p99_ms'], 2)} ms`);
    }

    m0 = await s.mark();
    const alone = await s.gen.phase({ kind: 'publish', prefix: 'q', presentities: 1_000, count: 200_000, window: 100, maxMs: plan.unwatchedMs, drainMs: 500 });
    m1 = await s.mark();
    phaseFigures('alone', alone, m0, m1, f);
  });
  if (err) f['fan.error'] = 1;
  return closedRate;
}

/** Session 2: held subscriptions, memory per subscription during the storm and after Timer J. */
async function held(name: Name, o: Options, plan: Plan, f: Record<string, number>, log: (s: string) => void): Promise<void> {
  const err = await withServer(name, o, 240_000, log, async (s) => {
    const i0 = await s.server.internalMemory();
    const m0 = memory(s.server.pid); // after the GC of the reading above
    // The settled reading's baseline: the idle server as it settles on its own.
    if (plan.timerJ) await sleep(SETTLE_MS);
    const settled0 = memory(s.server.pid);
    const base = lowerOf(m0, settled0);
    const c0 = { cpu: cpuSeconds(s.pids), drops: udpReceiveBufferDrops(), machine: machineBusySeconds(), internal: undefined };
    const calledAt = performance.now();
    const sub = await s.gen.phase({ kind: 'subscribe', prefix: 'h', presentities: plan.heldPresentities, watchersPer: plan.held / plan.heldPresentities, window: 200, ratePerS: plan.heldRatePerS, maxMs: (plan.held / plan.heldRatePerS) * 1000 + 10_000, drainMs: 3_000 });
    const c1 = { cpu: cpuSeconds(s.pids), drops: udpReceiveBufferDrops(), machine: machineBusySeconds(), internal: undefined };
    phaseFigures('held', sub, c0, c1, f);
    f['held.resubscribed'] = sub.resubscribed;
    const n = Math.max(1, sub.ok);
    // The phase returns after 400 ms without a NOTIFY: the storm reading is ~2 s after the last one.
    await sleep(1_600);
    const read = (k: string, m: MemoryReading, i: InternalMemory | undefined) => {
      f[`${k}.rss_mb`] = m.rss / 2 ** 20;
      f[`${k}.pss_mb`] = m.pssTree / 2 ** 20;
      f[`${k}.rss_bytes_per_sub`] = (m.rss - base.rss) / n;
      f[`${k}.pss_bytes_per_sub`] = (m.pssTree - base.pssTree) / n;
      if (i && i0) f[`${k}.live_bytes_per_sub`] = (i.bytes - i0.bytes) / n;
    };
    // The server's own reading first (for Herald a forced, compacting GC), then RSS/PSS after it.
    const memNow = async (): Promise<[MemoryReading, InternalMemory | undefined]> => {
      const i = await s.server.internalMemory();
      await sleep(1_000); // V8 hands emptied pages back from a background task
      return [memory(s.server.pid), i];
    };
    read('storm', ...(await memNow()));
    log(`${name}: ${sub.ok} held subscriptions; storm: ${fmt(f['storm.pss_bytes_per_sub'])} B PSS, ${fmt(f['storm.live_bytes_per_sub'])} B live per subscription`);
    if (plan.timerJ) {
      const until = calledAt + sub.requestMs + TIMER_J_MS;
      await sleep(Math.max(0, until - performance.now()));
      read('steady', ...(await memNow()));
      log(`${name}: after Timer J: ${fmt(f['steady.pss_bytes_per_sub'])} B PSS, ${fmt(f['steady.live_bytes_per_sub'])} B live per subscription`);
      await sleep(SETTLE_MS);
      const m = memory(s.server.pid);
      f['settled.rss_bytes_per_sub'] = (m.rss - settled0.rss) / n;
      f['settled.pss_bytes_per_sub'] = (m.pssTree - settled0.pssTree) / n;
      log(`${name}: settled: ${fmt(f['settled.pss_bytes_per_sub'])} B PSS, ${fmt(f['settled.rss_bytes_per_sub'])} B RSS per subscription`);
    }
    f['held.subscriptions'] = sub.ok;
    f['mem.before_pss_mb'] = base.pssTree / 2 ** 20;
  });
  if (err) f['held.error'] = 1;
}

/** Session 3 (--realistic): 5,000 presentities × 10 watchers, one PUBLISH per presentity every 2 s. */
async function realistic(name: Name, o: Options, plan: Plan, f: Record<string, number>, log: (s: string) => void): Promise<void> {
  const err = await withServer(name, o, 240_000, log, async (s) => {
    const subs = plan.realisticPresentities * 10;
    // Set-up, not measured: offered at 2,000/s, a SUBSCRIBE shed with 503 is asked for again (loadgen.ts),
    // so the time allowed is that of a server admitting 500/s.
    const sub = await s.gen.phase({ kind: 'subscribe', prefix: 'r', presentities: plan.realisticPresentities, watchersPer: 10, window: 200, ratePerS: 2_000, maxMs: (subs / 500) * 1000 + 20_000, drainMs: 3_000 });
    f['real.subscriptions'] = sub.ok;
    f['real.resubscribed'] = sub.resubscribed;
    const rate = plan.realisticPresentities / 2;
    const m0 = await s.mark();
    const r = await s.gen.phase({ kind: 'publish', prefix: 'r', presentities: plan.realisticPresentities, count: Math.ceil((rate * plan.realisticMs) / 1000), window: plan.realisticPresentities, ratePerS: rate, maxMs: plan.realisticMs + 5_000, drainMs: 3_000 });
    const m1 = await s.mark();
    phaseFigures('real', r, m0, m1, f);
    f['real.rate'] = rate;
    log(`${name}: realistic ${sub.ok} subscriptions (${sub.resubscribed} SUBSCRIBEs sent again after a 503 or no answer), ${r.ok} PUBLISH at ${fmt(rate)}/s, ${r.notifies} NOTIFY, ${fmt(f['real.cpu_us_per_notify'], 1)} CPU-µs/NOTIFY`);
  });
  if (err) f['real.error'] = 1;
}

// ---- medians and the table ---------------------------------------------------------------------

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function medians(runs: Record<string, number>[]): Record<string, number> {
  const keys = new Set(runs.flatMap((r) => Object.keys(r)));
  const out: Record<string, number> = {};
  for (const k of keys) {
    const xs = runs.map((r) => r[k]).filter((x): x is number => x !== undefined);
    if (xs.length > 0) out[k] = median(xs);
  }
  return out;
}

function fmt(x: number | undefined, digits = 0): string {
  if (x === undefined || !Number.isFinite(x)) return '—';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

interface Row {
  label: string;
  /** One key, or several joined with '|' (shown as a / b, no ratio). */
  key: string;
  digits: number;
}

const ROWS: (Row | string)[] = [
  '1. fan-out: {fanP} presentities × {fanW} watchers, closed-loop PUBLISH (SIP-If-Match) for {fanS} s',
  { label: 'NOTIFY/s delivered (whole machine)', key: 'fan.notify_per_s', digits: 0 },
  { label: 'PUBLISH/s', key: 'fan.ok_per_s', digits: 0 },
  { label: 'server CPU-µs per NOTIFY', key: 'fan.cpu_us_per_notify', digits: 1 },
  { label: 'server CPU-µs per PUBLISH (with its NOTIFYs)', key: 'fan.cpu_us_per_ok', digits: 1 },
  { label: 'NOTIFYs per PUBLISH (10 = none coalesced)', key: 'fan.notifies_per_ok', digits: 2 },
  { label: 'publish→NOTIFY latency p50 / p99 (ms)', key: 'fan.latency_p50_ms|fan.latency_p99_ms', digits: 1 },
  { label: 'V8 bytes allocated per NOTIFY', key: 'fan.alloc_bytes_per_notify', digits: 0 },
  { label: 'GC share of server CPU / young generation (MB)', key: 'fan.gc_share|fan.new_space_mb', digits: 2 },
  { label: 'server / generator / other CPU (cores)', key: 'fan.server_cpu_util|fan.generator_cpu_util|fan.other_cores', digits: 2 },
  { label: 'PUBLISH failed / retransmits / NOTIFY retransmits / UDP drops', key: 'fan.failed|fan.retransmits|fan.notify_retransmits|fan.udp_drops', digits: 0 },
  '   paced at half of Herald\'s closed-loop PUBLISH rate',
  { label: 'PUBLISH/s offered', key: 'paced.rate', digits: 0 },
  { label: 'publish→NOTIFY latency p50 (ms)', key: 'paced.latency_p50_ms', digits: 2 },
  { label: 'publish→NOTIFY latency p99 (ms)', key: 'paced.latency_p99_ms', digits: 2 },
  { label: 'server CPU-µs per NOTIFY', key: 'paced.cpu_us_per_notify', digits: 1 },
  '   PUBLISH to presentities nobody watches (100 outstanding)',
  { label: 'PUBLISH/s', key: 'alone.ok_per_s', digits: 0 },
  { label: 'server CPU-µs per PUBLISH', key: 'alone.cpu_us_per_ok', digits: 1 },
  { label: 'V8 bytes allocated per PUBLISH', key: 'alone.alloc_bytes_per_ok', digits: 0 },
  '2. held subscriptions: {held} SUBSCRIBEs at {heldRate}/s, no publishing; growth per subscription',
  { label: 'SUBSCRIBE server CPU-µs each', key: 'held.cpu_us_per_ok', digits: 1 },
  { label: 'storm (+2 s): bytes PSS (process tree)', key: 'storm.pss_bytes_per_sub', digits: 0 },
  { label: 'storm: bytes RSS (main process)', key: 'storm.rss_bytes_per_sub', digits: 0 },
  { label: 'storm: live bytes (†)', key: 'storm.live_bytes_per_sub', digits: 0 },
  { label: 'after Timer J (+34 s): bytes PSS (process tree)', key: 'steady.pss_bytes_per_sub', digits: 0 },
  { label: 'after Timer J: bytes RSS (main process)', key: 'steady.rss_bytes_per_sub', digits: 0 },
  { label: 'after Timer J: live bytes (†)', key: 'steady.live_bytes_per_sub', digits: 0 },
  { label: 'settled (+45 s idle, no forced GC): bytes PSS', key: 'settled.pss_bytes_per_sub', digits: 0 },
  { label: 'settled: bytes RSS (main process)', key: 'settled.rss_bytes_per_sub', digits: 0 },
  { label: 'subscriptions held / SUBSCRIBE failed / sent again after 503', key: 'held.subscriptions|held.failed|held.resubscribed', digits: 0 },
  '3. realistic (--realistic): {realP} presentities × 10 watchers, one PUBLISH each per 2 s',
  { label: 'subscriptions / SUBSCRIBEs sent again after 503 (set-up)', key: 'real.subscriptions|real.resubscribed', digits: 0 },
  { label: 'PUBLISH/s offered / answered 2xx', key: 'real.rate|real.ok_per_s', digits: 0 },
  { label: 'NOTIFY/s', key: 'real.notify_per_s', digits: 0 },
  { label: 'NOTIFYs per PUBLISH answered (10 = every watcher told)', key: 'real.notifies_per_ok', digits: 2 },
  { label: 'server CPU utilisation (cores)', key: 'real.server_cpu_util', digits: 2 },
  { label: 'server CPU-µs per NOTIFY', key: 'real.cpu_us_per_notify', digits: 1 },
  { label: 'publish→NOTIFY latency p50 / p99 (ms)', key: 'real.latency_p50_ms|real.latency_p99_ms', digits: 1 },
  { label: 'V8 bytes allocated per NOTIFY', key: 'real.alloc_bytes_per_notify', digits: 0 },
  { label: 'server / generator / other CPU (cores)', key: 'real.server_cpu_util|real.generator_cpu_util|real.other_cores', digits: 2 },
  { label: 'PUBLISH failed / retransmits / NOTIFY retransmits / UDP drops', key: 'real.failed|real.retransmits|real.notify_retransmits|real.udp_drops', digits: 0 },
];

function cell(f: Record<string, number> | undefined, row: Row): string {
  if (!f) return '—';
  return row.key
    .split('|')
    .map((k) => fmt(f[k], row.digits))
    .join(' / ');
}

function table(h: Record<string, number> | undefined, k: Record<string, number> | undefined, kamailioNote: string | undefined, plan: Plan): string {
  const w0 = 64;
  const w = 24;
  const lines: string[] = [];
  const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
  const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
  lines.push(`${pad('', w0)}${lpad('Herald', w)}${lpad('Kamailio', w)}${lpad('Herald/Kam.', 13)}`);
  for (const r of ROWS) {
    if (typeof r === 'string') {
      lines.push(
        '',
        r
          .replace('{fanP}', fmt(plan.fanPresentities))
          .replace('{fanW}', fmt(plan.fanWatchers))
          .replace('{fanS}', fmt(plan.fanMs / 1000))
          .replace('{held}', fmt(plan.held))
          .replace('{heldRate}', fmt(plan.heldRatePerS))
          .replace('{realP}', fmt(plan.realisticPresentities)),
      );
      continue;
    }
    let ratio = '';
    if (h && k && !r.key.includes('|')) {
      const a = h[r.key];
      const b = k[r.key];
      if (a !== undefined && b !== undefined && b !== 0) ratio = `${fmt(a / b, 2)}×`;
    }
    lines.push(`${pad('  ' + r.label, w0)}${lpad(cell(h, r), w)}${lpad(k ? cell(k, r) : '—', w)}${lpad(ratio, 13)}`);
  }
  lines.push('', '(†) Herald: V8 heap used after a forced full GC (node --expose-gc, SIGUSR2 to the preloaded bench/heap-probe.ts); Kamailio: shared memory in use (kamcmd core.shmmem).');
  lines.push('CPU-µs are the server process tree\'s own user+system time (/proc) over the phase, divided by the messages of the phase.');
  if (kamailioNote) lines.push(`Kamailio: ${kamailioNote}`);
  return lines.join('\n');
}

/** The commit Herald was built from (and whether its tree had changes), for the record. */
function heraldCommit(): string | undefined {
  try {
    const head = execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head} (src/ modified)` : head;
  } catch {
    return undefined;
  }
}

// ---- main --------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const plan = planFor(o);
  const log = (s: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}`);
  const missing = kamailioMissing();
  const names: Name[] = [];
  if (o.only !== 'kamailio') names.push('herald');
  if (o.only !== 'herald') {
    if (missing) log(`Kamailio not measured: ${missing}`);
    else names.push('kamailio');
  }
  log(`${cpus().length} CPUs; ${o.runs} round(s)${o.quick ? ' (quick)' : ''}; Herald store ${o.heraldStore}; Kamailio ${o.kamailioChildren} UDP workers`);
  const machine0 = machineBusySeconds();
  const wall0 = performance.now();

  const rounds: Record<Name, Record<string, number>>[] = [];
  for (let i = 0; i < o.runs; i++) {
    const one = { herald: {}, kamailio: {} } as Record<Name, Record<string, number>>;
    // Alternately, each on a fresh server: fan-out (Herald sets the paced rate), then held subscriptions.
    let paced: number | undefined;
    for (const name of o.realisticOnly ? [] : names) {
      log(`round ${i + 1}/${o.runs}: ${name}, fan-out`);
      const closed = await fanOut(name, o, plan, one[name], paced, log);
      if (name === 'herald' && closed) paced = closed / 2;
    }
    for (const name of o.realisticOnly ? [] : names) {
      log(`round ${i + 1}/${o.runs}: ${name}, held subscriptions`);
      await held(name, o, plan, one[name], log);
    }
    if (o.realistic) {
      for (const name of names) {
        log(`round ${i + 1}/${o.runs}: ${name}, realistic`);
        await realistic(name, o, plan, one[name], log);
      }
    }
    rounds.push(one);
  }
  const wallS = (performance.now() - wall0) / 1000;
  const machineLoad = (machineBusySeconds() - machine0) / wallS;

  const med = (n: Name) => (names.includes(n) ? medians(rounds.map((r) => r[n])) : undefined);
  const h = med('herald');
  const k = med('kamailio');
  const kamailioNote = missing ? `not measured: ${missing}` : `kamailio 5.6 presence + presence_xml, in memory (subs_db_mode 0, publ_cache 2), ${o.kamailioChildren} UDP workers`;

  console.log('');
  const pinned = o.pin && cpus().length >= 2 && haveCommand('taskset');
  console.log(`Herald ${heraldCommit() ?? ''} (store ${o.heraldStore}) vs Kamailio — ${o.runs > 1 ? `median of ${o.runs} alternating rounds` : 'one round'}${o.quick ? ' (quick: reduced counts)' : ''}; server pinned to CPU 0, generator to CPU 1: ${pinned ? 'yes' : 'no'}`);
  console.log(table(h, k, kamailioNote, plan));
  const busy = [h, k].some((f) => f && ['fan', 'paced', 'alone', 'held'].some((ph) => (f[`${ph}.other_cores`] ?? 0) > 0.3));
  console.log(`\nMachine: ${fmt(machineLoad, 2)} of ${cpus().length} cores busy on average over the bench (everything, bench included).`);
  if (busy) console.log('Note: other processes used more than 0.3 of a core during a phase: throughput figures are noisy; CPU-µs per message less so.');
  const genBound = [h, k].some((f) => f && (f['fan.generator_cpu_util'] ?? 0) > 0.9);
  if (genBound) console.log('Note: the generator used > 90% of its core in the fan-out: that server\'s rates are lower bounds.');

  mkdirSync(RESULTS_DIR, { recursive: true });
  const out = { date: new Date().toISOString(), node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, machineLoad, options: o, plan, kamailio: kamailioNote, herald: { commit: heraldCommit(), store: o.heraldStore }, median: { herald: h, kamailio: k }, rounds };
  const path = join(RESULTS_DIR, 'latest.json');
  writeFileSync(path, JSON.stringify(out, null, 2) + '\n');
  console.log(`\nWrote ${path}`);
  // The RLS figure (issue 4): one list subscription against N direct subscriptions.
  if (!process.argv.includes('--no-rls') && !o.quick && o.only !== 'kamailio') {
    console.log('\nRLS: one change and the initial state, a list of N against N direct subscriptions');
    await runRlsBench({ sizes: [100, 1000], print: true });
    // The list load of issue 9 against Kamailio's rls (bench/rls-load.ts).
    await runRlsLoadBench({ rounds: o.runs > 1 ? o.runs : 2, ...(o.only ? { only: o.only } : {}) });
  }
  // The standards figures (issue 15): partial PIDF and conditional NOTIFY on the wire.
  if (!process.argv.includes('--no-standards') && o.only !== 'kamailio') await runStandardsBench({ lists: o.quick ? 200 : 1000 });
  // The cluster figure (issue 10): 1 node and 2 nodes on one Redis, Redis commands per PUBLISH and per NOTIFY.
  if (!process.argv.includes('--no-cluster') && o.only !== 'kamailio') await runClusterBench({ quick: o.quick });
  // Where Herald starts shedding (issue 16): a rate sweep, each method on a fresh Herald.
  if (!process.argv.includes('--no-overload') && o.only !== 'kamailio') await runOverloadBench((body) => withServer('herald', o, 180_000, log, (s) => body(s.gen, s.pids)), o.quick, log);
  // Held subscriptions at scale (issue 9): one Herald, --held N, every one notified once, 1M extrapolated.
  if (o.held !== undefined && o.only !== 'kamailio') {
    const f = await runHeldBench({ held: o.held, presentities: Math.max(1, Math.round(o.held / 10)), ratePerS: 1_500, timerJ: true, pin: o.pin, store: o.heraldStore, snapshotDir: undefined, maxOldSpaceMb: undefined, settleS: 90 });
    if (f) printHeld(f);
  }
}

main()
  .catch((e: unknown) => {
    console.error(`bench failed: ${(e as Error).stack ?? String(e)}`);
    process.exitCode = 1;
  })
  .finally(() => killEverything());
