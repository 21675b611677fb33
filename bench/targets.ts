// The servers the bench measures, each started as a child process on a free loopback UDP port with
// a config of its own in a temp dir, known by pid, and stopped by that pid (its own process tree
// only, for Kamailio's workers).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { processTree, sleep } from './proc.js';
import { optionsRequest } from './sip.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const HERALD_CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const HEAP_PROBE = fileURLToPath(new URL('./heap-probe.js', import.meta.url));
export const KAMAILIO_BIN = '/usr/sbin/kamailio';
export const KAMAILIO_CFG = join(REPO_ROOT, 'bench', 'kamailio', 'presence.cfg');
const KAMAILIO_DBTEXT = '/usr/share/kamailio/dbtext/kamailio';
const KAMAILIO_TABLES = ['version', 'presentity', 'watchers', 'active_watchers', 'xcap'];
/** The resource list server's tables beside them (rls + pua, bench/rls-load.ts). */
const KAMAILIO_RLS_TABLES = ['rls_watchers', 'rls_presentity', 'pua'];

export interface StartOptions {
  dir: string;
  port: number;
  /** CPU to pin the server to (taskset -c), or undefined for none. */
  cpu: number | undefined;
  /** Herald only: write a V8 CPU profile and a sampled allocation profile into this directory on exit. */
  cpuProfDir?: string;
  /** Herald only: its store, SQLite in the temp dir (the default, as deployed) or memory://. */
  store?: 'sqlite' | 'memory';
  /** Herald only: config keys set beside (or instead of) the bench's own, as [section, key, TOML value]. */
  config?: readonly [string, string, string][];
  /** Herald only: more node options (e.g. --heapsnapshot-signal=SIGUSR1, --max-old-space-size=…). */
  nodeArgs?: string[];
}

/** A server's own account of its live memory (what a GC or an allocator says is in use). */
export interface InternalMemory {
  measure: string;
  bytes: number;
  /** Herald only (bench/heap-probe.ts): bytes allocated on the V8 heap since start, GCs and their time, young generation size. */
  allocated?: number;
  gcs?: number;
  gcMs?: number;
  newSpace?: number;
  /** Herald only: V8's heap as reserved (committed) after that GC, and memory outside it (Buffers, native). */
  heapTotal?: number;
  external?: number;
  /** Herald only: per V8 space, bytes committed, used and resident after that GC. */
  spaces?: Record<string, SpaceReading>;
}

export interface SpaceReading {
  committed: number;
  used: number;
  resident: number;
}

export class Server {
  output = '';
  /** Reads the server's internal memory figure, when it has a way to give one. */
  internalMemory: () => Promise<InternalMemory | undefined> = () => Promise.resolve(undefined);
  private exited = false;
  private tree: number[] = [];

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly port: number,
  ) {
    child.stdout?.on('data', (d: Buffer) => this.keep(d));
    child.stderr?.on('data', (d: Buffer) => this.keep(d));
    child.once('exit', () => (this.exited = true));
    child.once('error', (e) => {
      this.exited = true;
      this.keep(Buffer.from(`could not run: ${e.message}\n`));
    });
  }

  private keep(d: Buffer): void {
    // Only the tail matters (why it failed); bounded.
    this.output = (this.output + d.toString()).slice(-20_000);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** The server's processes (read once it is ready; Kamailio forks its workers at start). */
  get pids(): number[] {
    return this.tree.length > 0 ? this.tree : [this.pid];
  }

  /** Resolves once the server answers an OPTIONS on its port (any status), within `timeoutMs`. */
  async ready(timeoutMs: number): Promise<void> {
    const sock = dgram.createSocket('udp4');
    let answered = false;
    sock.on('message', () => (answered = true));
    sock.on('error', () => undefined);
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const sentBy = `127.0.0.1:${sock.address().port}`;
    const end = Date.now() + timeoutMs;
    try {
      for (let i = 0; i < 1000 && Date.now() < end && !answered; i++) {
        if (this.exited) throw new Error(`${this.name} exited during start: ${this.output.slice(-2000)}`);
        const msg = optionsRequest({ via: { sentBy, branch: `z9hG4bKprobe${randomBytes(4).toString('hex')}` }, uri: `sip:127.0.0.1:${this.port}`, callId: `probe-${i}` });
        sock.send(msg, this.port, '127.0.0.1');
        await sleep(100);
      }
    } finally {
      sock.close();
    }
    if (!answered) throw new Error(`${this.name} did not answer OPTIONS within ${timeoutMs} ms: ${this.output.slice(-2000)}`);
    // Let a multi-process server finish forking before its tree is taken.
    await sleep(300);
    this.tree = processTree(this.pid);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; leftovers of its own tree are killed by pid. */
  async stop(graceMs = 8000): Promise<void> {
    const tree = this.tree.length > 0 ? this.tree : processTree(this.pid);
    if (!this.exited && this.pid > 0) {
      const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
      try {
        process.kill(this.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      await Promise.race([gone, sleep(graceMs)]);
      if (!this.exited) {
        try {
          process.kill(this.pid, 'SIGKILL');
        } catch {
          // already gone
        }
        await Promise.race([gone, sleep(2000)]);
      }
    }
    for (const pid of tree) if (pid !== this.pid) killIfOurs(pid, this.name === 'kamailio' ? 'kamailio' : 'node');
  }

  /** Synchronous last resort for exit handlers. */
  killNow(): void {
    const tree = this.tree.length > 0 ? this.tree : [this.pid];
    for (const pid of tree) {
      if (pid === this.pid && this.exited) continue;
      killIfOurs(pid, this.name === 'kamailio' ? 'kamailio' : 'node');
    }
  }
}

/** SIGKILL a pid that we started, after checking it still runs the program we started (pid reuse). */
function killIfOurs(pid: number, program: string): void {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    if (!cmd.includes(program)) return;
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

function pinned(cpu: number | undefined, cmd: string, args: string[]): [string, string[]] {
  return cpu === undefined ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]];
}

/**
 * Keys of the repository's config.toml by section: Herald grows sections (auth, xcap, policy) while
 * this bench lives, and its config rejects unknown keys, so overrides go in only where the key exists.
 */
function knownConfigKeys(): Map<string, Set<string>> {
  const keys = new Map<string, Set<string>>();
  let section = '';
  for (const line of readFileSync(join(REPO_ROOT, 'config.toml'), 'utf8').split('\n')) {
    const sec = /^\s*\[([A-Za-z0-9_.-]+)\]\s*$/.exec(line);
    if (sec) {
      section = sec[1]!;
      if (!keys.has(section)) keys.set(section, new Set());
      continue;
    }
    const key = /^\s*([A-Za-z0-9_]+)\s*=/.exec(line);
    if (key && section) keys.get(section)?.add(key[1]!);
  }
  return keys;
}

/**
 * Herald as the peer runs: no authentication, every watcher allowed (Kamailio: force_active), no
 * XCAP or admin listener (each would take a fixed TCP port). Each override only if this Herald has the key.
 */
const HERALD_OVERRIDES: [string, string, string][] = [
  ['auth', 'enabled', 'false'],
  ['xcap', 'enabled', 'false'],
  ['admin', 'enabled', 'false'],
  ['policy', 'default', '"allow"'],
  // Every subscription of the bench comes from the one generator address; the realistic phase holds
  // 50,000 (Kamailio has no such bound). The default, 20,000, answered the rest 403.
  ['limits', 'max_subscriptions_per_source', '1000000'],
];

export function heraldConfig(dir: string, port: number, store: 'sqlite' | 'memory' = 'sqlite', extra: readonly [string, string, string][] = []): string {
  const known = knownConfigKeys();
  const sections = new Map<string, string[]>([
    ['sip', [`listen = ["udp:127.0.0.1:${port}"]`, 'domains = ["example.test"]']],
    ['store', [store === 'memory' ? 'url = "memory://"' : `url = "sqlite://${join(dir, 'herald.sqlite')}"`]],
    ['log', ['level = "warn"', 'format = "json"']],
  ]);
  const given = new Set(extra.map(([section, key]) => `${section}.${key}`));
  for (const [section, key, value] of [...HERALD_OVERRIDES.filter(([sec, key]) => !given.has(`${sec}.${key}`)), ...extra]) {
    if (!known.get(section)?.has(key)) continue;
    const lines = sections.get(section) ?? [];
    lines.push(`${key} = ${value}`);
    sections.set(section, lines);
  }
  return [...sections].map(([name, lines]) => `[${name}]\n${lines.join('\n')}\n`).join('');
}

export function startHerald(o: StartOptions): Server {
  const cfg = join(o.dir, 'herald.toml');
  writeFileSync(cfg, heraldConfig(o.dir, o.port, o.store, o.config));
  const probeFile = join(o.dir, 'heap-probe.json');
  // $HERALD_BENCH_NODE_ARGS: extra node/V8 flags for every Herald a bench starts (space-separated), to
  // try the runtime's knobs against the same load, e.g. HERALD_BENCH_NODE_ARGS=--compact-on-every-full-gc.
  const extra = (process.env['HERALD_BENCH_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
  const nodeArgs = ['--expose-gc', ...extra, ...(o.nodeArgs ?? []), '--import', pathToFileURL(HEAP_PROBE).href, ...(o.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProfDir] : [])];
  const [cmd, args] = pinned(o.cpu, process.execPath, [...nodeArgs, HERALD_CLI, '--config', cfg]);
  const env = { ...process.env, HERALD_BENCH_PROBE: probeFile, ...(o.cpuProfDir ? { HERALD_BENCH_ALLOC_PROFILE: join(o.cpuProfDir, `Alloc.${Date.now()}.heapprofile`) } : {}) };
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const server = new Server('herald', child, o.port);
  server.internalMemory = () => heapAfterGc(server, probeFile);
  return server;
}

interface ProbeReport {
  heapUsed: number;
  heapTotal?: number;
  external?: number;
  allocated?: number;
  gcs?: number;
  gcMs?: number;
  newSpace?: number;
  spaces?: Record<string, SpaceReading>;
  at: number;
  gc?: boolean;
  ready?: boolean;
}

function readProbe(file: string): ProbeReport | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ProbeReport;
  } catch {
    return undefined;
  }
}

/** Asks the preloaded heap probe for a full GC and the heap used after it (bounded wait). */
async function heapAfterGc(server: Server, file: string): Promise<InternalMemory | undefined> {
  const before = readProbe(file);
  // Without the probe loaded, SIGUSR2 would end the process: send it only once the probe said ready.
  if (!before || !server.alive) return undefined;
  try {
    process.kill(server.pid, 'SIGUSR2');
  } catch {
    return undefined;
  }
  for (let i = 0; i < 100; i++) {
    await sleep(50);
    const r = readProbe(file);
    if (r && r.at !== before.at && r.gc) {
      return { measure: 'V8 heap used after a forced full GC', bytes: r.heapUsed, allocated: r.allocated, gcs: r.gcs, gcMs: r.gcMs, newSpace: r.newSpace, heapTotal: r.heapTotal, external: r.external, spaces: r.spaces };
    }
  }
  return undefined;
}

/** Kamailio's shared memory in use (core.shmmem over the ctl socket, with kamcmd). */
function kamailioShm(ctl: string): Promise<InternalMemory | undefined> {
  return new Promise((resolve) => {
    execFile('kamcmd', ['-s', `unix:${ctl}`, 'core.shmmem'], { timeout: 3000 }, (err, stdout) => {
      const m = /\bused:\s*(\d+)/.exec(stdout ?? '');
      resolve(err || !m ? undefined : { measure: 'shared memory used (core.shmmem)', bytes: Number(m[1]) });
    });
  });
}

/** Why Kamailio cannot be run here, or undefined when it can. */
export function kamailioMissing(): string | undefined {
  if (!existsSync(KAMAILIO_BIN)) return `${KAMAILIO_BIN} not found (Debian packages kamailio and kamailio-presence-modules)`;
  for (const m of ['presence.so', 'presence_xml.so', 'db_text.so']) {
    if (!existsSync(join('/usr/lib/x86_64-linux-gnu/kamailio/modules', m))) return `Kamailio module ${m} not installed (kamailio-presence-modules)`;
  }
  for (const t of KAMAILIO_TABLES) if (!existsSync(join(KAMAILIO_DBTEXT, t))) return `db_text table ${join(KAMAILIO_DBTEXT, t)} missing`;
  if (!existsSync(KAMAILIO_CFG)) return `${KAMAILIO_CFG} missing`;
  return undefined;
}

/**
 * Kamailio's rls reads each subscriber's rls-services document from its `xcap` table
 * (integrated_xcap_server): rows in db_text's line format, written before it starts.
 */
export interface KamailioRls {
  /** Rows of the xcap table: id:username:domain:doc:doc_type:etag:source:doc_uri:port, values escaped. */
  xcapRows: string[];
}

export function startKamailio(o: StartOptions & { children: number; shmMb: number; maxBuffer: number | undefined; rls?: KamailioRls }): Server {
  // presence needs a db_url even with everything in memory; db_text tables in the temp dir.
  const db = join(o.dir, 'dbtext');
  mkdirSync(db, { recursive: true });
  for (const t of [...KAMAILIO_TABLES, ...(o.rls ? KAMAILIO_RLS_TABLES : [])]) copyFileSync(join(KAMAILIO_DBTEXT, t), join(db, t));
  if (o.rls) appendFileSync(join(db, 'xcap'), o.rls.xcapRows.map((r) => `${r}\n`).join(''));
  const runtime = join(o.dir, 'run');
  mkdirSync(runtime, { recursive: true });
  const [cmd, args] = pinned(o.cpu, KAMAILIO_BIN, [
    '-DD',
    '-E',
    '-f',
    KAMAILIO_CFG,
    '-A',
    `BENCH_PORT=${o.port}`,
    '-A',
    `BENCH_DBURL="text://${db}"`,
    '-A',
    `BENCH_CHILDREN=${o.children}`,
    ...(o.maxBuffer ? ['-A', `BENCH_MAXBUFFER=${o.maxBuffer}`] : []),
    ...(o.rls ? ['-A', 'BENCH_RLS', '-A', `BENCH_RLS_ADDRESS="sip:rls@127.0.0.1:${o.port}"`] : []),
    '-m',
    String(o.shmMb),
    '-M',
    '32',
    '-Y',
    runtime,
    '-w',
    o.dir,
  ]);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: o.dir });
  const server = new Server('kamailio', child, o.port);
  server.internalMemory = () => kamailioShm(join(runtime, 'kamailio_ctl'));
  return server;
}
