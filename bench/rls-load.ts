// The resource-list load of issue 9, Herald against Kamailio's rls module side by side:
// 500 presentities publishing every 2 s on average (one PUBLISH each at a uniformly random 0–4 s
// interval, SIP-If-Match refreshes), 100 lists of 50 shared members (each presentity is in 10 lists),
// each list subscribed once (Supported/Require: eventlist, Accept RLMI + multipart/related), both
// servers fresh on a free loopback UDP port, alternately. Each server batches a list's changes into
// at most one NOTIFY a second (Herald rls.min_notify_interval 1000, Kamailio rls waitn_time 1).
//
//   node dist/bench/rls.js [--load-only] [--rounds N] [--seconds S]      (or runRlsLoadBench())
//
// Counted at the subscriber, from the RLMI bodies: a delivered member update is an active instance
// whose part shows a member state (the PIDF note) this list had not shown before; a full state that
// repeats what the list already showed counts nothing. Per server:
//   - CPU-µs per delivered member update: the server's process tree CPU (utime + stime, /proc) from
//     the first paced PUBLISH until the NOTIFYs went quiet after the last, over the updates delivered
//     in that window;
//   - member updates/s delivered, bytes per list NOTIFY (whole SIP message as read), NOTIFYs;
//   - PSS per list subscription: growth of the process tree's PSS from before the 100 list SUBSCRIBEs
//     (every presentity published) to 2 s after every list showed all its members;
//   - stale members: after the last PUBLISH was answered and the NOTIFYs went quiet, the (list,
//     member) pairs whose last state shown differs from what that member last published (of 5,000).
// Herald's lists are one rls-services document on its own XCAP server (PUT with digest, as a user
// would); Kamailio's are one rls-services document per subscriber in its db_text xcap table
// (integrated_xcap_server: rls reads the subscriber's own document), written before it starts.
// Bounded: fixed counts, every wait has a deadline; loopback only; servers stopped by pid.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseMultipart, rootPart } from '../src/formats/multipart.js';
import { parseRlmi } from '../src/formats/rlmi.js';
import { xcap } from '../test/support/xcap.js';
import { cpuSeconds, freeUdpPort, machineBusySeconds, memory, sleep, udpReceiveBufferDrops } from './proc.js';
import { BenchUA, windowed, type Wire } from './rls.js';
import { HERALD_CLI, heraldConfig, kamailioMissing, startHerald, startKamailio, type Server } from './targets.js';

const D = 'example.test';
const PRESENTITIES = 500;
const LISTS = 100;
const MEMBERS = 50;
/** Mean seconds between two PUBLISHes of one presentity (uniform on 0 … 2× this). */
const PUBLISH_MEAN_MS = 2000;
/** No list NOTIFY for this long after the last PUBLISH was answered: every server has said what it will say. */
const QUIET_MS = 5000;
const OWNER = { username: 'owner', password: 'owner-pw' };
const RLS_DOC_TYPE = 8; // Kamailio's xcap table doc_type for rls-services (xcap_client's RLS_SERVICE, 1 << 3)

const uri = (u: string): string => `sip:${u}@${D}`;
const presentity = (p: number): string => uri(`m${p}`);
const listUri = (l: number): string => uri(`list${l}`);
const watcherOf = (l: number): string => uri(`w${l}`);
const rnd = (): string => randomBytes(6).toString('hex');

/** Member j of list l: 7l + 10j mod 500 — 50 different presentities per list, each presentity in exactly 10 lists. */
export const memberOf = (l: number, j: number): number => (l * 7 + j * 10) % PRESENTITIES;

function service(l: number): string {
  const entries = Array.from({ length: MEMBERS }, (_, j) => `<rl:entry uri="${presentity(memberOf(l, j))}"/>`).join('');
  // RFC 4826 §4.2: the service's <list> is rls-services', its entries resource-lists'.
  return `<service uri="${listUri(l)}"><list>${entries}</list><packages><package>presence</package></packages></service>`;
}

const rlsServices = (lists: readonly number[]): string =>
  `<?xml version="1.0" encoding="UTF-8"?><rls-services xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists">${lists.map(service).join('')}</rls-services>`;

/** db_text's escapes for one value of a row (':' separates columns). */
const dbText = (v: string): string => v.replace(/\\/g, '\\\\').replace(/:/g, '\\:').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t');

/** Kamailio's xcap rows: subscriber w<l> owns an rls-services document with list<l>. */
function kamailioXcapRows(): string[] {
  return Array.from({ length: LISTS }, (_, l) =>
    [String(l + 1), `w${l}`, D, dbText(rlsServices([l])), String(RLS_DOC_TYPE), `e${l}`, '0', dbText(`rls-services/users/${watcherOf(l)}/index`), '0'].join(':'),
  );
}

/** The PIDF each presentity publishes: one open tuple with a note that names the change. */
export const pidf = (entity: string, note: string): string =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${entity}"><tuple id="t1"><status><basic>open</basic></status><note>${note}</note></tuple></presence>`;

const NOTE = /<(?:[A-Za-z0-9_-]+:)?note[^>]*>([^<]*)</;

async function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** What the subscriber side counted, cumulative. */
interface Tally {
  notifies: number;
  bytes: number;
  /** Active instances with a part, whether new or repeated. */
  parts: number;
  /** Parts that showed a member state new to that list. */
  updates: number;
  unreadable: number;
}

/** The subscriber and publisher side of the load over one UDP socket. */
class ListLoad {
  readonly tally: Tally = { notifies: 0, bytes: 0, parts: 0, updates: 0, unreadable: 0 };
  /** Per list: member URI → the note it last showed. */
  readonly shown = Array.from({ length: LISTS }, () => new Map<string, string>());
  readonly published: (string | undefined)[] = Array(PRESENTITIES).fill(undefined);
  private readonly etags: (string | undefined)[] = Array(PRESENTITIES).fill(undefined);
  private readonly inFlight = new Set<number>();
  private readonly callIds = new Map<string, number>();
  private seq = 0;
  publishOk = 0;
  publishFailed = 0;

  private constructor(private readonly ua: BenchUA) {
    ua.onNotify((m) => this.onNotify(m));
  }

  static async open(port: number): Promise<ListLoad> {
    return new ListLoad(await BenchUA.openUdp(port));
  }

  close(): void {
    this.ua.close();
  }

  private onNotify(m: Wire): void {
    const l = this.callIds.get(m.header('call-id', 'i') ?? '');
    if (l === undefined) return;
    this.tally.notifies++;
    this.tally.bytes += m.bytes;
    const ct = m.header('content-type', 'c');
    if (!ct?.toLowerCase().startsWith('multipart/related')) return;
    try {
      const mp = parseMultipart(ct, m.body, { maxParts: MEMBERS * 2 + 10, maxBytes: 4 * 1024 * 1024 });
      const root = rootPart(mp);
      if (!root) throw new Error('no root part');
      const rlmi = parseRlmi(root.body);
      const parts = new Map(mp.parts.map((p) => [p.contentId, p.body]));
      const shown = this.shown[l]!;
      for (const r of rlmi.resources) {
        const inst = r.instances[0];
        if (inst?.state !== 'active' || !inst.cid) continue;
        const note = NOTE.exec(parts.get(inst.cid) ?? '')?.[1];
        if (note === undefined) continue;
        this.tally.parts++;
        if (shown.get(r.uri) !== note) {
          this.tally.updates++;
          shown.set(r.uri, note);
        }
      }
    } catch {
      this.tally.unreadable++;
    }
    if (process.env['RLS_DUMP'] && this.tally.notifies % 200 === 1) console.log(m.head, '\n\n', m.body.slice(0, 3000));
  }

  /** One PUBLISH of presentity p with a new note (refreshing its publication by ETag once it has one). */
  async publish(p: number): Promise<void> {
    if (this.inFlight.has(p)) return;
    this.inFlight.add(p);
    const who = presentity(p);
    const note = `p${p}-${++this.seq}`;
    const etag = this.etags[p];
    try {
      const r = await this.ua.request('PUBLISH', who, {
        from: who,
        fromTag: rnd(),
        callId: `pub-${p}-${rnd()}`,
        cseq: 1,
        headers: ['Event: presence', 'Expires: 3600', ...(etag ? [`SIP-If-Match: ${etag}`] : [])],
        body: pidf(who, note),
      });
      if (r.startLine.startsWith('SIP/2.0 200')) {
        this.publishOk++;
        this.published[p] = note;
        this.etags[p] = r.header('sip-etag');
      } else {
        this.publishFailed++;
        // 412: the publication is gone; the next PUBLISH creates one.
        this.etags[p] = undefined;
      }
    } catch {
      this.publishFailed++;
    } finally {
      this.inFlight.delete(p);
    }
  }

  /** Subscribes list l as its watcher (again after a 503, a few times); resolves with the final status. */
  async subscribe(l: number): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const callId = `list-${l}-${rnd()}`;
      this.callIds.set(callId, l);
      const r = await this.ua.request('SUBSCRIBE', listUri(l), {
        from: watcherOf(l),
        fromTag: rnd(),
        callId,
        cseq: 1,
        headers: ['Event: presence', 'Supported: eventlist', 'Require: eventlist', 'Accept: application/rlmi+xml, multipart/related, application/pidf+xml', 'Expires: 3600'],
      });
      const status = Number(r.startLine.slice(8, 11));
      if (status !== 503 || attempt >= 4) return status;
      this.callIds.delete(callId);
      await sleep(1000);
    }
  }

  /** Paced publishing for `ms`: each presentity again after a uniform 0–2×mean wait. Resolves when every PUBLISH was answered. */
  async pace(ms: number): Promise<void> {
    const start = performance.now();
    const next = Array.from({ length: PRESENTITIES }, () => start + Math.random() * 2 * PUBLISH_MEAN_MS);
    const running: Promise<void>[] = [];
    while (performance.now() - start < ms) {
      const now = performance.now();
      for (let p = 0; p < PRESENTITIES; p++) {
        if (next[p]! > now) continue;
        next[p] = now + Math.random() * 2 * PUBLISH_MEAN_MS;
        running.push(this.publish(p));
      }
      if (running.length > 5000) await Promise.all(running.splice(0));
      await sleep(10);
    }
    await Promise.all(running);
  }

  async waitQuiet(quietMs: number, maxMs: number): Promise<void> {
    const end = performance.now() + maxMs;
    let last = this.tally.notifies;
    let since = performance.now();
    while (performance.now() - since < quietMs && performance.now() < end) {
      await sleep(50);
      if (this.tally.notifies !== last) {
        last = this.tally.notifies;
        since = performance.now();
      }
    }
  }

  /** (list, member) pairs whose last shown state is not what the member last published. */
  stale(): number {
    let n = 0;
    for (let l = 0; l < LISTS; l++) {
      for (let j = 0; j < MEMBERS; j++) {
        const p = memberOf(l, j);
        if (this.shown[l]!.get(presentity(p)) !== this.published[p]) n++;
      }
    }
    return n;
  }

  membersShown(): number {
    return this.shown.reduce((a, s) => a + s.size, 0);
  }
}

type Name = 'herald' | 'kamailio';

export interface RlsLoadFigures {
  cpuUsPerUpdate: number;
  updatesPerS: number;
  bytesPerNotify: number;
  notifies: number;
  updates: number;
  parts: number;
  pssPerList: number;
  /** Herald: V8 heap used after a full GC; Kamailio: shared memory in use (core.shmmem). */
  internalPerList: number;
  /** Herald only: bytes allocated on the V8 heap in the window per delivered member update (bench/heap-probe.ts). */
  allocatedPerUpdate: number;
  stale: number;
  publishOk: number;
  publishFailed: number;
  unreadable: number;
  serverCores: number;
  otherCores: number;
  /** Datagrams the kernel dropped for a full receive buffer, machine-wide, in the window. */
  udpDrops: number;
}

async function session(name: Name, seconds: number, log: (s: string) => void, profDir?: string): Promise<RlsLoadFigures> {
  const dir = mkdtempSync(join(tmpdir(), `herald-bench-rls-${name}-`));
  let server: Server | undefined;
  let load: ListLoad | undefined;
  try {
    const port = await freeUdpPort();
    if (name === 'herald') {
      const xcapPort = await freeTcpPort();
      const config: [string, string, string][] = [
        ['xcap', 'enabled', 'true'],
        ['xcap', 'listen', `"127.0.0.1:${xcapPort}"`],
        ['xcap', 'max_document_bytes', String(4 * 1024 * 1024)],
        ['rls', 'min_notify_interval', '1000'],
        // The machine is shared: a neighbour's burst must not make Herald shed this load with 503s
        // (Kamailio has no such control); event-loop delay is not measured for shedding here.
        ['limits', 'max_event_loop_delay', '0'],
      ];
      const cfg = join(dir, 'herald.toml');
      // The list owner, for the XCAP PUT (the store is the temp dir's SQLite file).
      writeFileSync(cfg, heraldConfig(dir, port, 'sqlite', config));
      execFileSync(process.execPath, [HERALD_CLI, 'user', 'add', uri(OWNER.username), '--config', cfg], { input: `${OWNER.password}\n`, stdio: ['pipe', 'ignore', 'pipe'], timeout: 30_000 });
      server = startHerald({ dir, port, cpu: undefined, config, ...(profDir ? { cpuProfDir: profDir } : {}) });
      await server.ready(20_000);
      const put = await xcap('PUT', `http://127.0.0.1:${xcapPort}/xcap-root`, `rls-services/users/${uri(OWNER.username)}/index`, OWNER, rlsServices(Array.from({ length: LISTS }, (_, l) => l)), 'application/rls-services+xml');
      if (put.status !== 201 && put.status !== 200) throw new Error(`XCAP PUT of the lists: ${put.status} ${put.body.slice(0, 300)}`);
    } else {
      // maxbuffer: its UDP receive buffer as large as the kernel allows (rls talks to its own presence
      // agent through that socket: every back-end NOTIFY crosses it twice).
      server = startKamailio({ dir, port, cpu: undefined, children: 4, shmMb: 1024, maxBuffer: 4 * 1024 * 1024, rls: { xcapRows: kamailioXcapRows() } });
      await server.ready(20_000);
    }
    const s = server;
    load = await ListLoad.open(port);
    const ld = load;
    // Every presentity has a state before any list is subscribed.
    await windowed(Array.from({ length: PRESENTITIES }, (_, p) => p), 50, (p) => ld.publish(p));
    if (ld.publishOk < PRESENTITIES) log(`${name}: only ${ld.publishOk} of ${PRESENTITIES} initial PUBLISHes answered 200`);
    const settle = async (): Promise<{ pss: number; internal: number | undefined; allocated: number | undefined }> => {
      // Herald: after a full GC (the bench's heap probe); Kamailio: its shared memory in use
      // (kamcmd). Then PSS of the whole process tree once it has stopped moving (freed pages go
      // back to the kernel lazily: V8's memory reducer, malloc trimming): two readings a second
      // apart within 256 KB, at most 20 s.
      await sleep(1000);
      const internal = await s.internalMemory();
      let pss = memory(s.pid).pssTree;
      for (let i = 0; i < 20; i++) {
        await sleep(1000);
        const next = memory(s.pid).pssTree;
        const still = Math.abs(next - pss) < 256 * 1024;
        pss = next;
        if (still) break;
      }
      return { pss, internal: internal?.bytes, allocated: internal?.allocated };
    };
    const mem0 = await settle();
    const statuses = new Map<number, number>();
    await windowed(Array.from({ length: LISTS }, (_, l) => l), 20, async (l) => {
      const st = await ld.subscribe(l);
      statuses.set(st, (statuses.get(st) ?? 0) + 1);
    });
    if ((statuses.get(200) ?? 0) + (statuses.get(202) ?? 0) < LISTS) throw new Error(`list SUBSCRIBEs answered ${[...statuses].map(([k, v]) => `${v}× ${k}`).join(', ')}`);
    const deadline = performance.now() + 30_000;
    while (ld.membersShown() < LISTS * MEMBERS && performance.now() < deadline) await sleep(50);
    if (ld.membersShown() < LISTS * MEMBERS) log(`${name}: only ${ld.membersShown()} of ${LISTS * MEMBERS} member states shown after the list SUBSCRIBEs`);
    const mem1 = await settle();

    // The paced load, measured until the NOTIFYs went quiet after the last PUBLISH.
    const pids = s.pids;
    const t0 = { ...ld.tally };
    const cpu0 = cpuSeconds(pids);
    const m0 = machineBusySeconds();
    const drops0 = udpReceiveBufferDrops();
    const own0 = process.cpuUsage();
    const w0 = performance.now();
    const ok0 = ld.publishOk;
    const failed0 = ld.publishFailed;
    await ld.pace(seconds * 1000);
    const paceS = (performance.now() - w0) / 1000;
    await ld.waitQuiet(QUIET_MS, 30_000);
    const cpuS = cpuSeconds(pids) - cpu0;
    const wallS = (performance.now() - w0) / 1000;
    const own = process.cpuUsage(own0);
    const otherCores = Math.max(0, machineBusySeconds() - m0 - cpuS - (own.user + own.system) / 1e6) / wallS;
    const t1 = ld.tally;
    const updates = t1.updates - t0.updates;
    // After the CPU reading: the probe's forced GC is not the load's.
    const allocated1 = (await s.internalMemory())?.allocated;
    const notifies = t1.notifies - t0.notifies;
    if (!s.alive) throw new Error(`${name} exited during the run: ${s.output.slice(-1000)}`);
    return {
      cpuUsPerUpdate: updates > 0 ? (cpuS * 1e6) / updates : NaN,
      updatesPerS: updates / paceS,
      bytesPerNotify: notifies > 0 ? (t1.bytes - t0.bytes) / notifies : NaN,
      notifies,
      updates,
      parts: t1.parts - t0.parts,
      pssPerList: (mem1.pss - mem0.pss) / LISTS,
      internalPerList: mem0.internal !== undefined && mem1.internal !== undefined ? (mem1.internal - mem0.internal) / LISTS : NaN,
      allocatedPerUpdate: mem1.allocated !== undefined && allocated1 !== undefined && updates > 0 ? (allocated1 - mem1.allocated) / updates : NaN,
      stale: ld.stale(),
      publishOk: ld.publishOk - ok0,
      publishFailed: ld.publishFailed - failed0,
      unreadable: t1.unreadable,
      serverCores: cpuS / wallS,
      otherCores,
      udpDrops: udpReceiveBufferDrops() - drops0,
    };
  } finally {
    load?.close();
    if (server) {
      await server.stop();
      const bad = server.output.split('\n').filter((l) => /ERROR|CRITICAL|"level":[456]\d/.test(l));
      if (bad.length > 0) log(`${name}: ${bad.length} error/warning line(s) in its output, the last ones:\n${bad.slice(-4).map((l) => l.slice(0, 300)).join('\n')}`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface RlsLoadOptions {
  rounds?: number;
  /** Only this server (profiling, development). */
  only?: Name;
  /** Write Herald's V8 CPU profile (and allocation profile) into this directory (bench/profile-top.ts reads it). */
  profDir?: string;
  /** Seconds of paced publishing per server per round. */
  seconds?: number;
}

/** Why Kamailio's rls cannot be run here, or undefined when it can. */
function kamailioRlsMissing(): string | undefined {
  const base = kamailioMissing();
  if (base) return base;
  for (const m of ['rls.so', 'pua.so', 'pv.so']) if (!existsSync(join('/usr/lib/x86_64-linux-gnu/kamailio/modules', m))) return `Kamailio module ${m} not installed (kamailio-presence-modules)`;
  return undefined;
}

/** Runs the list load on Herald and Kamailio alternately, prints the table; returns the medians. */
export async function runRlsLoadBench(opts: RlsLoadOptions = {}): Promise<Record<Name, RlsLoadFigures | undefined>> {
  const rounds = Math.max(1, Math.min(5, opts.rounds ?? 2));
  const seconds = Math.max(3, Math.min(120, opts.seconds ?? 20));
  const log = (s: string) => console.log(`[rls-load ${new Date().toISOString().slice(11, 19)}] ${s}`);
  const missing = kamailioRlsMissing();
  const names: Name[] = (missing ? ['herald' as const] : (['herald', 'kamailio'] as const)).filter((n) => opts.only === undefined || n === opts.only);
  if (missing) log(`Kamailio not measured: ${missing}`);
  const runs: Record<Name, RlsLoadFigures[]> = { herald: [], kamailio: [] };
  const m0 = machineBusySeconds();
  const w0 = performance.now();
  for (let r = 0; r < rounds; r++) {
    for (const name of names) {
      log(`round ${r + 1}/${rounds}: ${name}`);
      try {
        const f = await session(name, seconds, log, opts.profDir);
        runs[name].push(f);
        log(`${name}: ${f.cpuUsPerUpdate.toFixed(1)} CPU-µs per member update, ${f.bytesPerNotify.toFixed(0)} bytes per list NOTIFY, ${f.updates} updates in ${f.notifies} NOTIFYs, ${f.stale} stale, ${Number.isFinite(f.allocatedPerUpdate) ? `${f.allocatedPerUpdate.toFixed(0)} B allocated per update, ` : ""}PSS ${(f.pssPerList / 1024).toFixed(1)} KB per list, ${f.serverCores.toFixed(2)} cores (others ${f.otherCores.toFixed(2)})`);
      } catch (e) {
        log(`${name}: FAILED: ${(e as Error).message}`);
      }
    }
  }
  const machineLoad = (machineBusySeconds() - m0) / ((performance.now() - w0) / 1000);
  const med = (n: Name): RlsLoadFigures | undefined => {
    const xs = runs[n];
    if (xs.length === 0) return undefined;
    const keys = Object.keys(xs[0]!) as (keyof RlsLoadFigures)[];
    return Object.fromEntries(keys.map((k) => [k, median(xs.map((x) => x[k]))])) as unknown as RlsLoadFigures;
  };
  const h = med('herald');
  const k = med('kamailio');
  const rows: [string, (f: RlsLoadFigures) => string, boolean][] = [
    ['CPU-µs per delivered member update', (f) => f.cpuUsPerUpdate.toFixed(1), true],
    ['member updates delivered per s', (f) => f.updatesPerS.toFixed(0), true],
    ['bytes per list NOTIFY', (f) => f.bytesPerNotify.toFixed(0), true],
    ['list NOTIFYs in the window', (f) => f.notifies.toFixed(0), false],
    ['member parts (new or repeated)', (f) => f.parts.toFixed(0), false],
    ['PSS per list subscription (KB)', (f) => (f.pssPerList / 1024).toFixed(1), true],
    ['live memory per list subscription (KB) †', (f) => (f.internalPerList / 1024).toFixed(1), true],
    ['V8 bytes allocated per member update', (f) => (Number.isFinite(f.allocatedPerUpdate) ? f.allocatedPerUpdate.toFixed(0) : '–'), false],
    [`stale member states (of ${LISTS * MEMBERS})`, (f) => f.stale.toFixed(0), false],
    ['PUBLISH answered 200 / failed', (f) => `${f.publishOk.toFixed(0)} / ${f.publishFailed.toFixed(0)}`, false],
    ['unreadable list NOTIFYs', (f) => f.unreadable.toFixed(0), false],
    ['server cores busy', (f) => f.serverCores.toFixed(2), false],
    ['other processes, cores', (f) => f.otherCores.toFixed(2), false],
    ['UDP receive-buffer drops (machine)', (f) => f.udpDrops.toFixed(0), false],
  ];
  const ratioOf = (label: string): string => {
    if (!h || !k) return '';
    const pick: Record<string, number[]> = {
      'CPU-µs per delivered member update': [h.cpuUsPerUpdate, k.cpuUsPerUpdate],
      'member updates delivered per s': [h.updatesPerS, k.updatesPerS],
      'bytes per list NOTIFY': [h.bytesPerNotify, k.bytesPerNotify],
      'PSS per list subscription (KB)': [h.pssPerList, k.pssPerList],
      'live memory per list subscription (KB) †': [h.internalPerList, k.internalPerList],
    };
    const v = pick[label];
    return v && v[1]! > 0 ? `${(v[0]! / v[1]!).toFixed(2)}×` : '';
  };
  console.log(`\nResource lists under load (issue 9): ${PRESENTITIES} presentities publishing every ${PUBLISH_MEAN_MS / 1000} s on average, ${LISTS} lists of ${MEMBERS} shared members,`);
  console.log(`one list NOTIFY a second at most; ${seconds} s of publishing per server; ${rounds > 1 ? `median of ${rounds} alternating rounds` : 'one round'}; loopback UDP.`);
  console.log(`Kamailio: ${missing ? `not measured: ${missing}` : 'kamailio 5.6 rls + pua + presence + presence_xml, 4 UDP workers, db_mode 0, lists in its db_text xcap table'}.\n`);
  const head = ['', 'Herald', 'Kamailio', 'Herald / Kamailio'];
  const body = rows.map(([label, fn, ratio]) => [label, h ? fn(h) : '–', k ? fn(k) : '–', ratio ? ratioOf(label) : '']);
  const widths = head.map((x, i) => Math.max(x.length, ...body.map((b) => b[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  console.log([line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n'));
  console.log('\n(†) Herald: V8 heap used after a forced full GC; Kamailio: shared memory in use (kamcmd core.shmmem). Memory: from before the');
  console.log('    100 list SUBSCRIBEs (every presentity published) to after every list showed all its members, over 100.');
  console.log(`\nMachine: ${machineLoad.toFixed(2)} of ${cpus().length} cores busy on average over the list load (everything, bench included).`);
  return { herald: h, kamailio: k };
}
