// Herald's load bench: `npm run bench` (builds, then `node dist/bench/run.js`).
//
//   node dist/bench/run.js [--runs N] [--only herald|kamailio] [--no-pin] [--quick] [--prof] [--no-rls] [--no-standards]
//                          [--window N] [--publish-window N] [--herald-store sqlite|memory]
//                          [--kamailio-children N] [--kamailio-maxbuffer BYTES]
//
// For each server (Herald, then Kamailio with its presence module when installed) it starts the
// server on a free 127.0.0.1 UDP port with a temp config, starts the load generator (loadgen.ts) in a
// separate process, and runs three phases, each capped in count and in time:
//   a. SUBSCRIBE: 1,000 presentities × 10 watchers (10,000 dialogs), ≤ 200 outstanding, every NOTIFY
//      answered 200; memory (Herald RSS, Kamailio PSS over its processes) before, right after, after a
//      1 s settle and at +6 s, plus each server's own account of live memory at +6 s (Herald: V8 heap
//      after a forced GC through bench/heap-probe.ts; Kamailio: core.shmmem through kamcmd);
//   b. PUBLISH to those presentities (initial, then modifies with SIP-If-Match), ≤ 20 outstanding
//      (each fans out into 10 NOTIFYs; see Plan.publishWindow), 30,000 or 30 s: PUBLISH/s, NOTIFY/s,
//      and publish→NOTIFY latency matched by a unique token in the note;
//   c. PUBLISH to 1,000 presentities nobody watches, 30,000 or 20 s: PUBLISH/s.
// With two cores, the server is pinned to CPU 0 and the generator to CPU 1 (taskset; --no-pin to
// leave placement to the kernel). Server and generator CPU time are read per phase, so figures can be
// normalised per core. Prints a table and writes bench/results/latest.json. No assertions.
//
// One run stays under 4 minutes (about 1.5 in practice; a global deadline trims the phases' time caps);
// --runs N repeats it and reports medians (`npm run bench -- --runs 3`, about 5 minutes). --prof writes
// Herald's V8 CPU profile to bench/results/prof/. Traffic goes to 127.0.0.1 only; the bench stops what
// it started, by pid, also on SIGINT/SIGTERM.
import { runRlsBench } from './rls.js';
import { runStandardsBench } from './standards.js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { isFromLoadgen, type FromLoadgen, type Phase, type PhaseResult, type ToLoadgen } from './protocol.js';
import { cpuSeconds, freeUdpPort, haveCommand, machineBusySeconds, memory, sleep, udpReceiveBufferDrops, type MemoryReading } from './proc.js';
import { kamailioMissing, REPO_ROOT, startHerald, startKamailio, type InternalMemory, type Server } from './targets.js';

const LOADGEN = fileURLToPath(new URL('./loadgen.js', import.meta.url));
const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');
/** One run (both servers) must end within this. */
const RUN_DEADLINE_MS = 225_000;

// ---- options -----------------------------------------------------------------------------------

interface Options {
  runs: number;
  only: 'herald' | 'kamailio' | undefined;
  pin: boolean;
  quick: boolean;
  prof: boolean;
  kamailioChildren: number;
  /** Outstanding requests allowed in phases a and c (overrides the plan's window). */
  window: number | undefined;
  /** Outstanding PUBLISH requests in phase b (overrides the plan's publishWindow). */
  publishWindow: number | undefined;
  heraldStore: 'sqlite' | 'memory';
  /** Kamailio's maxbuffer (UDP receive buffer probing limit), bytes; undefined: its default. */
  kamailioMaxBuffer: number | undefined;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { runs: 1, only: undefined, pin: true, quick: false, prof: false, kamailioChildren: 2, window: undefined, publishWindow: undefined, heraldStore: 'sqlite', kamailioMaxBuffer: undefined };
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
    else if (a === '--kamailio-children') o.kamailioChildren = Math.max(1, Math.min(16, Number(argv[++i]) || 2));
    else if (a === '--kamailio-maxbuffer') o.kamailioMaxBuffer = Math.max(65536, Math.min(64 * 2 ** 20, Number(argv[++i]) || 262144));
    else if (a === '--publish-window') o.publishWindow = Math.max(1, Math.min(1000, Number(argv[++i]) || 20));
    else if (a === '--herald-store') {
      const v = argv[++i];
      if (v !== 'sqlite' && v !== 'memory') throw new Error('--herald-store takes sqlite or memory');
      o.heraldStore = v;
    } else if (a === '--window') o.window = Math.max(1, Math.min(1000, Number(argv[++i]) || 200));
    else if (a === '--no-rls') continue; // read in main(): skip the RLS figure
    else if (a === '--no-standards') continue; // read in main(): skip the issue-15 figures
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

// ---- the load generator process ----------------------------------------------------------------

class Loadgen {
  private waiters: ((m: FromLoadgen) => void)[] = [];
  private exited = false;

  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: unknown) => {
      if (!isFromLoadgen(m)) return;
      const w = this.waiters.shift();
      if (w) w(m);
    });
    const gone = (why: string) => {
      this.exited = true;
      for (const w of this.waiters.splice(0)) w({ type: 'error', message: why });
    };
    child.once('exit', () => gone('load generator exited'));
    child.once('error', (e) => gone(`load generator could not run: ${e.message}`));
  }

  static start(cpu: number | undefined, lifetimeMs: number): Loadgen {
    const args = [LOADGEN, String(lifetimeMs)];
    const child =
      cpu === undefined
        ? spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
        : spawn('taskset', ['-c', String(cpu), process.execPath, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new Loadgen(child);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  call(m: ToLoadgen, timeoutMs: number): Promise<FromLoadgen> {
    return new Promise((resolve, reject) => {
      if (this.exited) return reject(new Error('load generator is not running'));
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`load generator gave no answer to ${m.type} in ${timeoutMs} ms`));
      }, timeoutMs);
      const w = (r: FromLoadgen) => {
        clearTimeout(t);
        if (r.type === 'error') reject(new Error(r.message));
        else resolve(r);
      };
      this.waiters.push(w);
      this.child.send(m);
    });
  }

  async phase(p: Phase): Promise<PhaseResult> {
    const r = await this.call({ type: 'phase', phase: p }, p.maxMs + p.drainMs + 20_000);
    if (r.type !== 'result') throw new Error(`unexpected ${r.type} from the load generator`);
    return r.result;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
    try {
      this.child.send({ type: 'stop' } satisfies ToLoadgen);
    } catch {
      // channel closed
    }
    await Promise.race([gone, sleep(3000)]);
    if (!this.exited) this.killNow();
  }

  killNow(): void {
    if (this.exited || !this.child.pid) return;
    try {
      process.kill(this.child.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
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

// ---- one server, three phases ------------------------------------------------------------------

interface PhaseFigures {
  result: PhaseResult;
  /** Datagrams dropped machine-wide on full UDP receive buffers during the phase. */
  udpDrops: number;
  /** CPU used by everything but the server and the generator, in cores (noise on a shared machine). */
  otherCores: number;
  wallS: number;
  serverCpuS: number;
  /** Server CPU time over wall time: 1.0 is one core busy. */
  serverCpuUtil: number;
  generatorCpuUtil: number;
  /** 2xx answers per second, from the first request to the last answer. */
  okPerS: number;
  notifyPerS: number;
  okPerServerCpuS: number;
  notifyPerServerCpuS: number;
}

interface ServerRun {
  name: string;
  ok: boolean;
  error?: string;
  processes?: number;
  memory?: {
    before: MemoryReading;
    after: MemoryReading;
    /** 1 s after the phase. */
    settled: MemoryReading;
    /** 6 s after the phase: Kamailio's transactions (5 s wait timer) are gone by then. */
    late: MemoryReading;
    internalBefore: InternalMemory | undefined;
    internalLate: InternalMemory | undefined;
    subscriptions: number;
  };
  subscribe?: PhaseFigures;
  publish?: PhaseFigures;
  publishOnly?: PhaseFigures;
}

interface PhaseStart {
  cpu: number;
  drops: number;
  machine: number;
}

function figures(result: PhaseResult, start: PhaseStart, pids: readonly number[]): PhaseFigures {
  const wallS = result.wallMs / 1000;
  const serverCpuS = cpuSeconds(pids) - start.cpu;
  const udpDrops = udpReceiveBufferDrops() - start.drops;
  const other = machineBusySeconds() - start.machine - serverCpuS - result.generatorCpuS;
  return {
    result,
    udpDrops,
    otherCores: wallS > 0 ? Math.max(0, other) / wallS : 0,
    wallS,
    serverCpuS,
    serverCpuUtil: wallS > 0 ? serverCpuS / wallS : 0,
    generatorCpuUtil: wallS > 0 ? result.generatorCpuS / wallS : 0,
    okPerS: result.requestMs > 0 ? (result.ok * 1000) / result.requestMs : 0,
    notifyPerS: result.notifyMs > 0 ? (result.notifies * 1000) / result.notifyMs : 0,
    okPerServerCpuS: serverCpuS > 0 ? result.ok / serverCpuS : 0,
    notifyPerServerCpuS: serverCpuS > 0 ? result.notifies / serverCpuS : 0,
  };
}

interface Plan {
  presentities: number;
  watchersPer: number;
  /** Outstanding requests in phases a and c. */
  window: number;
  /**
   * Outstanding PUBLISH requests in phase b. Each one fans out into `watchersPer` NOTIFY transactions,
   * so 20 keeps about 200 transactions in flight, as in the other phases. That saturates one core of
   * either server without overflowing UDP receive buffers (window 200 there means ~2,000 NOTIFYs and
   * their answers in flight: Kamailio's socket then drops datagrams and latencies measure retransmission
   * timers rather than the servers). --publish-window 200 gives that load.
   */
  publishWindow: number;
  publishes: number;
  publishOnly: number;
  capSubscribeMs: number;
  capPublishMs: number;
  capPublishOnlyMs: number;
  drainMs: number;
}

function planFor(o: Options): Plan {
  const plan: Plan = o.quick
    ? { presentities: 100, watchersPer: 10, window: 100, publishWindow: 10, publishes: 3000, publishOnly: 3000, capSubscribeMs: 10_000, capPublishMs: 10_000, capPublishOnlyMs: 10_000, drainMs: 3000 }
    : { presentities: 1000, watchersPer: 10, window: 200, publishWindow: 20, publishes: 30_000, publishOnly: 30_000, capSubscribeMs: 30_000, capPublishMs: 30_000, capPublishOnlyMs: 20_000, drainMs: 5000 };
  if (o.window !== undefined) plan.window = o.window;
  if (o.publishWindow !== undefined) plan.publishWindow = o.publishWindow;
  return plan;
}

async function benchServer(name: 'herald' | 'kamailio', o: Options, plan: Plan, deadline: number, log: (s: string) => void): Promise<ServerRun> {
  const run: ServerRun = { name, ok: false };
  const pin = o.pin && cpus().length >= 2 && haveCommand('taskset');
  const dir = mkdtempSync(join(tmpdir(), `herald-bench-${name}-`));
  started.dirs.add(dir);
  let server: Server | undefined;
  let gen: Loadgen | undefined;
  // Each phase gets its cap, or what is left before the deadline (less a reserve for the rest).
  const cap = (want: number, reserveMs: number) => Math.max(1000, Math.min(want, deadline - performance.now() - reserveMs));
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
    run.processes = server.pids.length;
    log(`${name}: pid ${server.pid} (${server.pids.length} process${server.pids.length > 1 ? 'es' : ''}) on udp 127.0.0.1:${port}${pin ? ', pinned to CPU 0' : ''}`);

    gen = Loadgen.start(pin ? 1 : undefined, Math.max(30_000, deadline - performance.now() + 30_000));
    started.loadgens.add(gen);
    const ready = await gen.call({ type: 'start', target: { host: '127.0.0.1', port }, domain: 'example.test', sockets: 8 }, 10_000);
    if (ready.type !== 'ready') throw new Error('load generator did not start');
    log(`${name}: load generator pid ${gen.pid}, ${ready.ports.length} sockets${pin ? ', pinned to CPU 1' : ''}`);

    await sleep(1000);
    const pids = server.pids;

    // a. subscriptions
    const internalBefore = await server.internalMemory();
    const before = memory(server.pid);
    const mark = (): PhaseStart => ({ cpu: cpuSeconds(pids), drops: udpReceiveBufferDrops(), machine: machineBusySeconds() });
    let start = mark();
    const a = await gen.phase({ kind: 'subscribe', prefix: 'p', presentities: plan.presentities, watchersPer: plan.watchersPer, window: plan.window, maxMs: cap(plan.capSubscribeMs, 80_000), drainMs: plan.drainMs });
    run.subscribe = figures(a, start, pids);
    const after = memory(server.pid);
    await sleep(1000);
    const settled = memory(server.pid);
    await sleep(5000);
    const late = memory(server.pid);
    const internalLate = await server.internalMemory();
    run.memory = { before, after, settled, late, internalBefore, internalLate, subscriptions: a.ok };
    log(`${name}: subscribe ${a.ok}/${a.sent} ok, ${run.subscribe.okPerS.toFixed(0)}/s, ${a.notifies} NOTIFYs`);

    // b. publish to watched presentities
    start = mark();
    const b = await gen.phase({ kind: 'publish', prefix: 'p', presentities: plan.presentities, count: plan.publishes, window: plan.publishWindow, maxMs: cap(plan.capPublishMs, 35_000), drainMs: plan.drainMs });
    run.publish = figures(b, start, pids);
    log(`${name}: publish ${b.ok}/${b.sent} ok, ${run.publish.okPerS.toFixed(0)}/s; ${b.notifies} NOTIFYs, ${run.publish.notifyPerS.toFixed(0)}/s`);

    // c. publish to presentities nobody watches
    start = mark();
    const c = await gen.phase({ kind: 'publish', prefix: 'q', presentities: plan.presentities, count: plan.publishOnly, window: plan.window, maxMs: cap(plan.capPublishOnlyMs, 10_000), drainMs: 1000 });
    run.publishOnly = figures(c, start, pids);
    log(`${name}: publish-only ${c.ok}/${c.sent} ok, ${run.publishOnly.okPerS.toFixed(0)}/s`);
    run.ok = server.alive;
    if (!server.alive) run.error = `${name} exited during the run: ${server.output.slice(-2000)}`;
  } catch (e) {
    run.error = (e as Error).message;
    log(`${name}: FAILED: ${run.error}`);
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
  return run;
}

// ---- figures, medians, table -------------------------------------------------------------------

/** The numbers that go in the table, flat, so runs can be reduced to medians key by key. */
function flat(r: ServerRun): Record<string, number> {
  const f: Record<string, number> = {};
  if (r.memory) {
    const m = r.memory;
    const n = Math.max(1, m.subscriptions);
    f['mem.rss_before_mb'] = m.before.rss / 2 ** 20;
    f['mem.rss_after_mb'] = m.after.rss / 2 ** 20;
    f['mem.rss_settled_mb'] = m.settled.rss / 2 ** 20;
    f['mem.pss_tree_before_mb'] = m.before.pssTree / 2 ** 20;
    f['mem.pss_tree_settled_mb'] = m.settled.pssTree / 2 ** 20;
    f['mem.rss_per_10k_subs_mb'] = (((m.settled.rss - m.before.rss) / n) * 10_000) / 2 ** 20;
    f['mem.rss_bytes_per_sub'] = (m.settled.rss - m.before.rss) / n;
    f['mem.pss_tree_per_10k_subs_mb'] = (((m.settled.pssTree - m.before.pssTree) / n) * 10_000) / 2 ** 20;
    f['mem.pss_tree_bytes_per_sub'] = (m.settled.pssTree - m.before.pssTree) / n;
    f['mem.rss_late_mb'] = m.late.rss / 2 ** 20;
    f['mem.pss_tree_late_mb'] = m.late.pssTree / 2 ** 20;
    if (m.internalBefore && m.internalLate) {
      f['mem.internal_before_mb'] = m.internalBefore.bytes / 2 ** 20;
      f['mem.internal_late_mb'] = m.internalLate.bytes / 2 ** 20;
      f['mem.internal_bytes_per_sub'] = (m.internalLate.bytes - m.internalBefore.bytes) / n;
    }
  }
  const phase = (k: string, p: PhaseFigures | undefined) => {
    if (!p) return;
    f[`${k}.ok`] = p.result.ok;
    f[`${k}.sent`] = p.result.sent;
    f[`${k}.failed`] = p.result.sent - p.result.ok;
    f[`${k}.retransmits`] = p.result.retransmits;
    f[`${k}.ok_per_s`] = p.okPerS;
    f[`${k}.notifies`] = p.result.notifies;
    f[`${k}.notify_per_s`] = p.notifyPerS;
    f[`${k}.notify_retransmits`] = p.result.notifyRetransmits;
    f[`${k}.wall_s`] = p.wallS;
    f[`${k}.server_cpu_s`] = p.serverCpuS;
    f[`${k}.server_cpu_util`] = p.serverCpuUtil;
    f[`${k}.generator_cpu_util`] = p.generatorCpuUtil;
    f[`${k}.ok_per_server_cpu_s`] = p.okPerServerCpuS;
    f[`${k}.notify_per_server_cpu_s`] = p.notifyPerServerCpuS;
    f[`${k}.time_capped`] = p.result.timeCapped ? 1 : 0;
    f[`${k}.udp_drops`] = p.udpDrops;
    f[`${k}.other_cores`] = p.otherCores;
    if (p.result.ok > 0) f[`${k}.notifies_per_ok`] = p.result.notifies / p.result.ok;
    if (p.result.latency) {
      f[`${k}.latency_matched`] = p.result.latency.matched;
      f[`${k}.latency_p50_ms`] = p.result.latency.p50;
      f[`${k}.latency_p90_ms`] = p.result.latency.p90;
      f[`${k}.latency_p99_ms`] = p.result.latency.p99;
      f[`${k}.latency_max_ms`] = p.result.latency.max;
    }
  };
  phase('subscribe', r.subscribe);
  phase('publish', r.publish);
  phase('publish_only', r.publishOnly);
  return f;
}

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
  key: string;
  digits: number;
  /** Whether bigger is better (for the ratio's wording only). */
  ratio: boolean;
}

const ROWS: (Row | string)[] = [
  'a. {subs} subscriptions ({presentities} presentities × {watchers} watchers, {window} outstanding)',
  { label: 'SUBSCRIBE/s', key: 'subscribe.ok_per_s', digits: 0, ratio: true },
  { label: 'SUBSCRIBE per server CPU-second', key: 'subscribe.ok_per_server_cpu_s', digits: 0, ratio: true },
  { label: 'server / generator / other CPU (cores)', key: 'subscribe.server_cpu_util|subscribe.generator_cpu_util|subscribe.other_cores', digits: 2, ratio: false },
  { label: 'memory before (MB; Herald RSS, Kamailio PSS of all processes)', key: 'mem.main_before_mb', digits: 1, ratio: true },
  { label: 'memory after +1 s settle (MB, same measure)', key: 'mem.main_settled_mb', digits: 1, ratio: true },
  { label: 'memory per 10,000 subscriptions (MB, same measure)', key: 'mem.main_per_10k_subs_mb', digits: 2, ratio: true },
  { label: 'bytes per subscription (same measure)', key: 'mem.main_bytes_per_sub', digits: 0, ratio: true },
  { label: 'RSS right after phase (MB, main process)', key: 'mem.rss_after_mb', digits: 1, ratio: true },
  { label: 'memory 6 s after phase (MB, same measure as above)', key: 'mem.main_late_mb', digits: 1, ratio: true },
  { label: 'live bytes per subscription, own account at +6 s (†)', key: 'mem.internal_bytes_per_sub', digits: 0, ratio: true },
  { label: 'failed / retransmits / UDP buffer drops', key: 'subscribe.failed|subscribe.retransmits|subscribe.udp_drops', digits: 0, ratio: false },
  'b. PUBLISH to watched presentities ({watchers} watchers each, {publishWindow} PUBLISH outstanding)',
  { label: 'PUBLISH/s (200s received)', key: 'publish.ok_per_s', digits: 0, ratio: true },
  { label: 'NOTIFY/s (received)', key: 'publish.notify_per_s', digits: 0, ratio: true },
  { label: 'NOTIFYs per PUBLISH (10 = no coalescing)', key: 'publish.notifies_per_ok', digits: 2, ratio: true },
  { label: 'publish→NOTIFY latency p50 (ms)', key: 'publish.latency_p50_ms', digits: 2, ratio: true },
  { label: 'publish→NOTIFY latency p99 (ms)', key: 'publish.latency_p99_ms', digits: 2, ratio: true },
  { label: 'server CPU utilisation (1.0 = one core)', key: 'publish.server_cpu_util', digits: 2, ratio: true },
  { label: 'PUBLISH per server CPU-second', key: 'publish.ok_per_server_cpu_s', digits: 0, ratio: true },
  { label: 'NOTIFY per server CPU-second', key: 'publish.notify_per_server_cpu_s', digits: 0, ratio: true },
  { label: 'generator CPU utilisation', key: 'publish.generator_cpu_util', digits: 2, ratio: false },
  { label: 'other processes\' CPU during the phase (cores; noise)', key: 'publish.other_cores', digits: 2, ratio: false },
  { label: 'PUBLISH sent / ok', key: 'publish.sent|publish.ok', digits: 0, ratio: false },
  { label: 'failed / retransmits / NOTIFY retransmits', key: 'publish.failed|publish.retransmits|publish.notify_retransmits', digits: 0, ratio: false },
  { label: 'UDP receive-buffer drops (machine-wide)', key: 'publish.udp_drops', digits: 0, ratio: false },
  'c. PUBLISH to presentities nobody watches ({window} outstanding)',
  { label: 'PUBLISH/s', key: 'publish_only.ok_per_s', digits: 0, ratio: true },
  { label: 'server CPU utilisation', key: 'publish_only.server_cpu_util', digits: 2, ratio: true },
  { label: 'PUBLISH per server CPU-second', key: 'publish_only.ok_per_server_cpu_s', digits: 0, ratio: true },
  { label: 'generator CPU utilisation', key: 'publish_only.generator_cpu_util', digits: 2, ratio: false },
  { label: 'other processes\' CPU during the phase (cores; noise)', key: 'publish_only.other_cores', digits: 2, ratio: false },
  { label: 'failed / retransmits / UDP buffer drops', key: 'publish_only.failed|publish_only.retransmits|publish_only.udp_drops', digits: 0, ratio: false },
];

/** The comparable memory measure: Herald is one process (RSS); Kamailio's workers share memory (PSS). */
function withMain(name: string, f: Record<string, number>): Record<string, number> {
  const g = { ...f };
  const pick = (rssKey: string, pssKey: string) => (name === 'herald' ? f[rssKey] : f[pssKey]);
  const set = (k: string, v: number | undefined) => {
    if (v !== undefined) g[k] = v;
  };
  set('mem.main_before_mb', pick('mem.rss_before_mb', 'mem.pss_tree_before_mb'));
  set('mem.main_settled_mb', pick('mem.rss_settled_mb', 'mem.pss_tree_settled_mb'));
  set('mem.main_per_10k_subs_mb', pick('mem.rss_per_10k_subs_mb', 'mem.pss_tree_per_10k_subs_mb'));
  set('mem.main_bytes_per_sub', pick('mem.rss_bytes_per_sub', 'mem.pss_tree_bytes_per_sub'));
  set('mem.main_late_mb', pick('mem.rss_late_mb', 'mem.pss_tree_late_mb'));
  return g;
}

function cell(f: Record<string, number> | undefined, row: Row): string {
  if (!f) return '—';
  return row.key
    .split('|')
    .map((k) => fmt(f[k], row.digits))
    .join(' / ');
}

function table(h: Record<string, number> | undefined, k: Record<string, number> | undefined, kamailioNote: string | undefined, plan: Plan): string {
  const w0 = 62;
  const w = 22;
  const lines: string[] = [];
  const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
  const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
  lines.push(`${pad('', w0)}${lpad('Herald', w)}${lpad('Kamailio', w)}${lpad('Herald/Kam.', 13)}`);
  for (const r of ROWS) {
    if (typeof r === 'string') {
      lines.push('', r.replace('{subs}', fmt(plan.presentities * plan.watchersPer)).replace('{presentities}', fmt(plan.presentities)).replace('{watchers}', fmt(plan.watchersPer)).replace('{window}', fmt(plan.window)).replace('{publishWindow}', fmt(plan.publishWindow)));
      continue;
    }
    let ratio = '';
    if (r.ratio && h && k && !r.key.includes('|')) {
      const a = h[r.key];
      const b = k[r.key];
      if (a !== undefined && b !== undefined && b !== 0) ratio = `${fmt(a / b, 2)}×`;
    }
    lines.push(`${pad('  ' + r.label, w0)}${lpad(cell(h, r), w)}${lpad(k ? cell(k, r) : '—', w)}${lpad(ratio, 13)}`);
  }
  lines.push('', '(†) Herald: V8 heap used after a forced full GC (node --expose-gc, SIGUSR2 to a preloaded probe); Kamailio: shared memory in use (kamcmd core.shmmem).');
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
  const names: ('herald' | 'kamailio')[] = [];
  if (o.only !== 'kamailio') names.push('herald');
  if (o.only !== 'herald') {
    if (missing) log(`Kamailio not measured: ${missing}`);
    else names.push('kamailio');
  }
  log(`${cpus().length} CPUs; ${o.runs} run(s); ${plan.presentities} presentities × ${plan.watchersPer} watchers, ${plan.publishes} + ${plan.publishOnly} PUBLISH; window ${plan.window} (phase b: ${plan.publishWindow} PUBLISH); Herald store ${o.heraldStore}`);

  const runs: ServerRun[][] = [];
  for (let i = 0; i < o.runs; i++) {
    const deadline = performance.now() + RUN_DEADLINE_MS;
    const one: ServerRun[] = [];
    for (const name of names) {
      log(`run ${i + 1}/${o.runs}: ${name}`);
      one.push(await benchServer(name, o, plan, deadline - (name === 'herald' && names.length > 1 ? RUN_DEADLINE_MS / 2 : 0), log));
    }
    runs.push(one);
  }

  const byName = (n: string) => runs.map((r) => r.find((x) => x.name === n)).filter((x): x is ServerRun => x !== undefined && x.ok);
  const med = (n: string) => {
    const rs = byName(n);
    return rs.length > 0 ? withMain(n, medians(rs.map(flat))) : undefined;
  };
  const h = med('herald');
  const k = med('kamailio');
  const kFail = runs.flat().find((r) => r.name === 'kamailio' && !r.ok);
  const kamailioNote = missing ? `not measured: ${missing}` : kFail ? `failed: ${kFail.error ?? 'unknown'}` : `kamailio 5.6 presence + presence_xml, in memory (subs_db_mode 0, publ_cache 2), ${o.kamailioChildren} UDP workers`;
  const hFail = runs.flat().find((r) => r.name === 'herald' && !r.ok);

  console.log('');
  const pinned = o.pin && cpus().length >= 2 && haveCommand('taskset');
  console.log(`Herald ${heraldCommit() ?? ''} (store ${o.heraldStore}) vs Kamailio — ${o.runs > 1 ? `median of ${o.runs} runs` : 'one run'}${o.quick ? ' (quick: reduced counts)' : ''}; server pinned to CPU 0, generator to CPU 1: ${pinned ? 'yes' : 'no'}`);
  console.log(table(h, k, kamailioNote, plan));
  if (hFail) console.log(`\nHerald: failed: ${hFail.error ?? 'unknown'}`);
  const genBound = [h, k].some((f) => f && ((f['publish.generator_cpu_util'] ?? 0) > 0.9 || (f['publish_only.generator_cpu_util'] ?? 0) > 0.9));
  const busy = [h, k].some((f) => f && ['subscribe', 'publish', 'publish_only'].some((ph) => (f[`${ph}.other_cores`] ?? 0) > 0.3));
  if (busy) console.log('\nNote: other processes used more than 0.3 of a core during a phase: throughput figures are noisy; the per-CPU-second ones less so.');
  if (genBound) console.log('\nNote: the generator used > 90% of its core in a phase: that phase\'s rates are lower bounds for the server.');

  mkdirSync(RESULTS_DIR, { recursive: true });
  const out = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    options: o,
    plan,
    kamailio: kamailioNote,
    herald: { commit: heraldCommit(), store: o.heraldStore },
    median: { herald: h, kamailio: k },
    runs,
  };
  const path = join(RESULTS_DIR, 'latest.json');
  writeFileSync(path, JSON.stringify(out, null, 2) + '\n');
  console.log(`\nWrote ${path}`);
  // The RLS figure (issue 4): one list subscription against N direct subscriptions.
  if (!process.argv.includes('--no-rls') && o.only !== 'kamailio') {
    console.log('\nRLS: one change and the initial state, a list of N against N direct subscriptions');
    await runRlsBench({ sizes: o.quick ? [100] : [100, 1000], print: true });
  }
  // The standards figures (issue 15): partial PIDF and conditional NOTIFY on the wire.
  if (!process.argv.includes('--no-standards') && o.only !== 'kamailio') await runStandardsBench({ lists: o.quick ? 200 : 1000 });
}

main()
  .catch((e: unknown) => {
    console.error(`bench failed: ${(e as Error).stack ?? String(e)}`);
    process.exitCode = 1;
  })
  .finally(() => killEverything());
