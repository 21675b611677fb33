// The RLS figure of `npm run bench`: what one watcher pays for a buddy list of N members held as ONE
// list subscription (RFC 4662) against N direct presence subscriptions, for N = 100 and N = 1000.
//
//   node dist/bench/rls.js [--sizes 100,1000] [--changes 5] [--no-load | --load-only] [--rounds N] [--seconds S]
//                        [--only herald|kamailio] [--prof DIR]
//   (or runRlsBench() from bench/run.ts; then the list load against Kamailio's rls, bench/rls-load.ts)
//
// Herald runs in-process (test/support/herald.ts: loopback, memory store, auth off, policy allow) with
// rls.min_notify_interval = 0 and rls.max_notify_bytes large enough for one full-state NOTIFY of the
// largest list. Every member has published first (a real PIDF with a note). Two watchers, each on its own
// TCP connection (a 1000-member full state does not fit a datagram): one holds the list subscription,
// the other N direct subscriptions, one per member. Measured at the watcher, from the bytes its socket
// reads and writes (whole SIP messages, headers and bodies):
//   - initial: from the first SUBSCRIBE until the watcher holds every member's state (the responses and
//     NOTIFYs it receives, the SUBSCRIBEs and 200s it sends);
//   - one change: a PUBLISH to one member; the NOTIFYs that reach the watcher until it has the new note
//     and 300 ms of quiet after it (mean over --changes changes of different members);
//   - refresh: every subscription refreshed once (RFC 6665 §4.2.1.2: each refresh brings a NOTIFY).
// Bounded: every wait has a deadline, at most 100 requests outstanding; loopback only. No assertions
// beyond sanity (a figure that could not be measured throws).
import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { startTestHerald, type TestHerald } from '../test/support/herald.js';
import { xcap } from '../test/support/xcap.js';
import { parseMultipart, rootPart } from '../src/formats/multipart.js';
import { parseRlmi } from '../src/formats/rlmi.js';
import type { RlsLoadOptions } from './rls-load.js';

const D = 'example.test';
const OWNER = { username: 'owner', password: 'owner-pw' };
const WAIT_MS = 60_000;
const QUIET_MS = 300;
const WINDOW = 100;

const rnd = (): string => randomBytes(6).toString('hex');
const uri = (u: string): string => `sip:${u}@${D}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One SIP message as read from the wire. */
export interface Wire {
  bytes: number;
  head: string;
  body: string;
  startLine: string;
  header(name: string, compact?: string): string | undefined;
}

function frame(buf: Buffer): Wire {
  const text = buf.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const head = text.slice(0, end);
  const lines = head.split('\r\n');
  return {
    bytes: buf.length,
    head,
    body: Buffer.from(text.slice(end + 4), 'latin1').toString('utf8'),
    startLine: lines[0] ?? '',
    header(name, compact) {
      const want = name.toLowerCase();
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        const n = l.slice(0, i).trim().toLowerCase();
        if (n === want || (compact !== undefined && n === compact)) return l.slice(i + 1).trim();
      }
      return undefined;
    },
  };
}

/** Counters of one connection, read as differences between two snapshots. */
export interface Counters {
  bytesIn: number;
  bytesOut: number;
  notifies: number;
  messagesIn: number;
  messagesOut: number;
}

export const minus = (a: Counters, b: Counters): Counters => ({
  bytesIn: a.bytesIn - b.bytesIn,
  bytesOut: a.bytesOut - b.bytesOut,
  notifies: a.notifies - b.notifies,
  messagesIn: a.messagesIn - b.messagesIn,
  messagesOut: a.messagesOut - b.messagesOut,
});

/**
 * A minimal SIP UA over one TCP connection (or one UDP socket): sends requests, matches final
 * responses by Via branch, answers every incoming request with 200 (Via, From, To, Call-ID, CSeq
 * copied), counts bytes.
 */
export class BenchUA {
  private readonly pending = new Map<string, (m: Wire) => void>();
  private notifyListeners: ((m: Wire) => void)[] = [];
  private readonly c: Counters = { bytesIn: 0, bytesOut: 0, notifies: 0, messagesIn: 0, messagesOut: 0 };
  private readonly seenNotifies = new Set<string>();
  private constructor(
    private readonly out: (b: Buffer) => void,
    private readonly closeSocket: () => void,
    readonly localPort: number,
    private readonly udp = false,
  ) {}

  /** A UDP UA on its own port (its address outlives a restart of Herald, unlike a TCP flow). */
  static async openUdp(port: number): Promise<BenchUA> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const ua = new BenchUA((b) => s.send(b, port, '127.0.0.1'), () => s.close(), s.address().port, true);
    s.on('message', (d: Buffer) => ua.onMessage(frame(d)));
    return ua;
  }

  static async open(port: number): Promise<BenchUA> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    socket.setNoDelay(true);
    const ua = new BenchUA((b) => socket.write(b), () => socket.destroy(), socket.localPort ?? 0);
    let buf: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      for (;;) {
        // RFC 5626 keep-alive CRLFs between messages.
        let skip = 0;
        while (skip + 1 < buf.length && buf[skip] === 13 && buf[skip + 1] === 10) skip += 2;
        if (skip > 0) buf = buf.subarray(skip);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const m = /^(?:content-length|l)[ \t]*:[ \t]*(\d+)/im.exec(buf.subarray(0, end).toString('latin1'));
        const total = end + 4 + (m ? Number(m[1]) : 0);
        if (buf.length < total) return;
        const msg = Buffer.from(buf.subarray(0, total));
        buf = buf.subarray(total);
        ua.onMessage(frame(msg));
      }
    });
    socket.on('error', () => undefined);
    return ua;
  }

  counters(): Counters {
    return { ...this.c };
  }

  private write(text: string): void {
    const b = Buffer.from(text, 'utf8');
    this.c.bytesOut += b.length;
    this.c.messagesOut++;
    this.out(b);
  }

  private onMessage(m: Wire): void {
    this.c.bytesIn += m.bytes;
    this.c.messagesIn++;
    if (m.startLine.startsWith('SIP/2.0 ')) {
      const status = Number(m.startLine.slice(8, 11));
      if (status < 200) return;
      const branch = /branch=([^;,\s]+)/.exec(m.header('via', 'v') ?? '')?.[1];
      const w = branch ? this.pending.get(branch) : undefined;
      if (branch && w) {
        this.pending.delete(branch);
        w(m);
      }
      return;
    }
    const copy = m.head
      .split('\r\n')
      .slice(1)
      .filter((l) => /^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:/i.test(l));
    this.write(['SIP/2.0 200 OK', ...copy, 'Content-Length: 0', '', ''].join('\r\n'));
    if (m.startLine.startsWith('NOTIFY ')) {
      // Over UDP a NOTIFY may come again (Timer E): counted once, its bytes each time.
      if (this.udp) {
        const key = `${m.header('call-id', 'i')}|${m.header('cseq')}`;
        if (this.seenNotifies.has(key)) return;
        this.seenNotifies.add(key);
      }
      this.c.notifies++;
      for (const l of this.notifyListeners) l(m);
    }
  }

  onNotify(listener: (m: Wire) => void): void {
    this.notifyListeners.push(listener);
  }

  request(method: string, target: string, o: { from: string; fromTag: string; toTag?: string; callId: string; cseq: number; headers: string[]; body?: string; contentType?: string }): Promise<Wire> {
    const branch = `z9hG4bK${rnd()}`;
    const body = o.body ?? '';
    const text = [
      `${method} ${target} SIP/2.0`,
      `Via: SIP/2.0/${this.udp ? 'UDP' : 'TCP'} 127.0.0.1:${this.localPort};branch=${branch};rport`,
      'Max-Forwards: 70',
      `From: <${o.from}>;tag=${o.fromTag}`,
      `To: <${target}>${o.toTag ? `;tag=${o.toTag}` : ''}`,
      `Call-ID: ${o.callId}`,
      `CSeq: ${o.cseq} ${method}`,
      `Contact: <sip:bench@127.0.0.1:${this.localPort}${this.udp ? '' : ';transport=tcp'}>`,
      ...o.headers,
      ...(body ? [`Content-Type: ${o.contentType ?? 'application/pidf+xml'}`] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ].join('\r\n');
    return new Promise((resolve, reject) => {
      // UDP: retransmitted (same branch) until answered, as RFC 3261 Timer E: 500 ms doubling up to T2 = 4 s.
      let again: NodeJS.Timeout | undefined;
      const retransmit = (ms: number): void => {
        again = setTimeout(() => {
          this.write(text);
          retransmit(Math.min(ms * 2, 4000));
        }, ms);
      };
      if (this.udp) retransmit(500);
      const t = setTimeout(() => {
        clearTimeout(again);
        this.pending.delete(branch);
        reject(new Error(`${method} ${target}: no final response in ${WAIT_MS} ms`));
      }, WAIT_MS);
      this.pending.set(branch, (m) => {
        clearTimeout(again);
        clearTimeout(t);
        resolve(m);
      });
      this.write(text);
    });
  }

  close(): void {
    this.closeSocket();
  }
}

/** Runs fn over items with at most `window` in flight. */
export async function windowed<T>(items: readonly T[], window: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(window, items.length) }, worker));
}

/** Resolves once pred() holds (checked every 5 ms), rejects after WAIT_MS. */
export async function until(pred: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`rls bench: ${what} not reached in ${WAIT_MS} ms`);
    await sleep(5);
  }
}

/** Waits until the connection has received nothing for `ms` (bounded by WAIT_MS). */
export async function quiet(ua: BenchUA, ms: number): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  let last = ua.counters().messagesIn;
  let since = Date.now();
  while (Date.now() - since < ms && Date.now() < deadline) {
    await sleep(20);
    const now = ua.counters().messagesIn;
    if (now !== last) {
      last = now;
      since = Date.now();
    }
  }
}

const pidfDoc = (entity: string, note: string): string =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${entity}"><tuple id="t1"><status><basic>open</basic></status><note>${note}</note></tuple></presence>`;

export interface Phase {
  notifies: number;
  bytesIn: number;
  bytesOut: number;
  messagesIn: number;
  messagesOut: number;
  ms: number;
}

export interface RlsBenchRow {
  members: number;
  way: 'list' | 'direct';
  /** Subscriptions the watcher holds. */
  subscriptions: number;
  initial: Phase;
  /** Mean per change of one member. */
  change: Phase;
  refresh: Phase;
}

export interface Dialog {
  target: string;
  callId: string;
  fromTag: string;
  toTag: string;
  cseq: number;
}

const LIST_HEADERS = ['Event: presence', 'Supported: eventlist', 'Accept: application/rlmi+xml, multipart/related, application/pidf+xml', 'Expires: 3600'];
const DIRECT_HEADERS = ['Event: presence', 'Accept: application/pidf+xml', 'Expires: 3600'];

async function benchSize(n: number, changes: number): Promise<RlsBenchRow[]> {
  // A full state of n members in one NOTIFY: ~450 bytes a member (RLMI entry, part headers, PIDF).
  // Event-loop delay is not measured for shedding: on a shared machine a neighbour's burst would
  // turn the PUBLISHes of the set-up into 503s, and this bench counts bytes, not overload.
  const h: TestHerald = await startTestHerald({ rls: { min_notify_interval: 0, max_notify_bytes: Math.max(60_000, n * 1000), max_members: Math.max(10_000, n) }, limits: { max_event_loop_delay: 0 } });
  const port = h.port('tcp');
  const uas: BenchUA[] = [];
  try {
    const members = Array.from({ length: n }, (_, i) => uri(`m${i}`));
    const listUri = uri(`buddies${n}`);
    await h.herald.users.add(uri(OWNER.username), OWNER.password);
    const services = `<?xml version="1.0" encoding="UTF-8"?>
<rls-services xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists">
<service uri="${listUri}"><list name="buddies">${members.map((m) => `<rl:entry uri="${m}"/>`).join('')}</list><packages><package>presence</package></packages></service>
</rls-services>`;
    const put = await xcap('PUT', h.xcapUrl(), `rls-services/users/${uri(OWNER.username)}/index`, OWNER, services, 'application/rls-services+xml');
    if (put.status !== 201 && put.status !== 200) throw new Error(`rls bench: XCAP PUT ${put.status} ${put.body}`);

    const pub = await BenchUA.open(port);
    uas.push(pub);
    const publish = async (who: string, note: string): Promise<void> => {
      const r = await pub.request('PUBLISH', who, { from: who, fromTag: rnd(), callId: rnd(), cseq: 1, headers: ['Event: presence', 'Expires: 3600'], body: pidfDoc(who, note) });
      if (!r.startLine.startsWith('SIP/2.0 200')) throw new Error(`rls bench: PUBLISH ${who}: ${r.startLine}`);
    };
    await windowed(members, WINDOW, (m) => publish(m, `${m} initial`));

    // ---- the list watcher -------------------------------------------------------------------
    const listUA = await BenchUA.open(port);
    uas.push(listUA);
    const listNotes = new Map<string, string>(); // member → the note it last showed
    listUA.onNotify((m) => {
      const ct = m.header('content-type', 'c');
      if (!ct?.startsWith('multipart/related')) return;
      const mp = parseMultipart(ct, m.body, { maxParts: n + 10, maxBytes: 64 * 1024 * 1024 });
      const rlmi = parseRlmi(rootPart(mp)!.body, { maxBytes: 64 * 1024 * 1024, maxElements: 10 * n + 100 });
      const parts = new Map(mp.parts.map((p) => [p.contentId, p.body]));
      for (const r of rlmi.resources) {
        const cid = r.instances[0]?.cid;
        const note = cid ? /<note[^>]*>([^<]*)</.exec(parts.get(cid) ?? '')?.[1] : undefined;
        if (note !== undefined) listNotes.set(r.uri, note);
      }
    });
    let c0 = listUA.counters();
    let t0 = performance.now();
    const listDialog: Dialog = { target: listUri, callId: rnd(), fromTag: rnd(), toTag: '', cseq: 1 };
    const lr = await listUA.request('SUBSCRIBE', listUri, { from: uri('watcher'), ...listDialog, headers: LIST_HEADERS });
    if (!lr.startLine.startsWith('SIP/2.0 200')) throw new Error(`rls bench: list SUBSCRIBE: ${lr.startLine}`);
    listDialog.toTag = /;tag=([^;\s>]+)/.exec(lr.header('to', 't') ?? '')?.[1] ?? '';
    await until(() => listNotes.size === n, `list full state of ${n}`);
    const listInitial: Phase = { ...minus(listUA.counters(), c0), ms: performance.now() - t0 };

    // ---- the direct watcher -----------------------------------------------------------------
    const directUA = await BenchUA.open(port);
    uas.push(directUA);
    const directNotes = new Map<string, string>();
    directUA.onNotify((m) => {
      const entity = /entity="([^"]+)"/.exec(m.body)?.[1];
      const note = /<note[^>]*>([^<]*)</.exec(m.body)?.[1];
      if (entity && note !== undefined) directNotes.set(entity, note);
    });
    c0 = directUA.counters();
    t0 = performance.now();
    const dialogs: Dialog[] = [];
    await windowed(members, WINDOW, async (m) => {
      const d: Dialog = { target: m, callId: rnd(), fromTag: rnd(), toTag: '', cseq: 1 };
      const r = await directUA.request('SUBSCRIBE', m, { from: uri('watcher'), ...d, headers: DIRECT_HEADERS });
      if (!r.startLine.startsWith('SIP/2.0 200')) throw new Error(`rls bench: SUBSCRIBE ${m}: ${r.startLine}`);
      d.toTag = /;tag=([^;\s>]+)/.exec(r.header('to', 't') ?? '')?.[1] ?? '';
      dialogs.push(d);
    });
    await until(() => directNotes.size === n, `direct full state of ${n}`);
    const directInitial: Phase = { ...minus(directUA.counters(), c0), ms: performance.now() - t0 };
    await quiet(listUA, QUIET_MS);
    await quiet(directUA, QUIET_MS);

    // ---- one member's change, `changes` times -------------------------------------------------
    const sum = { list: { ...minus(c0, c0), ms: 0 }, direct: { ...minus(c0, c0), ms: 0 } };
    for (let i = 0; i < changes; i++) {
      const who = members[Math.floor(((i + 0.5) * n) / changes)]!;
      const note = `change-${i}-${rnd()}`;
      const l0 = listUA.counters();
      const d0 = directUA.counters();
      const t = performance.now();
      await publish(who, note);
      let lt = 0;
      let dt = 0;
      await until(() => {
        if (!lt && listNotes.get(who) === note) lt = performance.now() - t;
        if (!dt && directNotes.get(who) === note) dt = performance.now() - t;
        return lt > 0 && dt > 0;
      }, `change ${i} at both watchers`);
      await quiet(listUA, QUIET_MS);
      await quiet(directUA, QUIET_MS);
      const l = minus(listUA.counters(), l0);
      const d = minus(directUA.counters(), d0);
      for (const [acc, x, ms] of [[sum.list, l, lt], [sum.direct, d, dt]] as const) {
        acc.bytesIn += x.bytesIn;
        acc.bytesOut += x.bytesOut;
        acc.notifies += x.notifies;
        acc.messagesIn += x.messagesIn;
        acc.messagesOut += x.messagesOut;
        acc.ms += ms;
      }
    }
    const mean = (p: Phase): Phase => ({
      notifies: p.notifies / changes,
      bytesIn: Math.round(p.bytesIn / changes),
      bytesOut: Math.round(p.bytesOut / changes),
      messagesIn: p.messagesIn / changes,
      messagesOut: p.messagesOut / changes,
      ms: p.ms / changes,
    });

    // ---- refresh every subscription once -------------------------------------------------------
    const refresh = async (ua: BenchUA, ds: Dialog[], headers: string[]): Promise<Phase> => {
      const r0 = ua.counters();
      const t = performance.now();
      const notifiesBefore = r0.notifies;
      await windowed(ds, WINDOW, async (d) => {
        d.cseq++;
        const r = await ua.request('SUBSCRIBE', d.target, { from: uri('watcher'), ...d, headers });
        if (!r.startLine.startsWith('SIP/2.0 200')) throw new Error(`rls bench: refresh ${d.target}: ${r.startLine}`);
      });
      await until(() => ua.counters().notifies - notifiesBefore >= ds.length, 'refresh NOTIFYs');
      const ms = performance.now() - t;
      await quiet(ua, QUIET_MS);
      return { ...minus(ua.counters(), r0), ms };
    };
    const listRefresh = await refresh(listUA, [listDialog], LIST_HEADERS);
    const directRefresh = await refresh(directUA, dialogs, DIRECT_HEADERS);

    return [
      { members: n, way: 'list', subscriptions: 1, initial: listInitial, change: mean(sum.list), refresh: listRefresh },
      { members: n, way: 'direct', subscriptions: n, initial: directInitial, change: mean(sum.direct), refresh: directRefresh },
    ];
  } finally {
    for (const u of uas) u.close();
    await h.stop();
  }
}

export function fmtBytes(b: number): string {
  return b >= 10_000_000 ? `${(b / 1e6).toFixed(1)} MB` : b >= 10_000 ? `${(b / 1e3).toFixed(1)} kB` : `${Math.round(b)} B`;
}

function table(rows: RlsBenchRow[]): string {
  const head = ['N', 'way', 'subs', 'initial NOTIFYs', 'initial in', 'initial out', 'initial ms', 'change NOTIFYs', 'change in', 'change out', 'change ms', 'refresh NOTIFYs', 'refresh in', 'refresh out'];
  const body = rows.map((r) => [
    String(r.members),
    r.way,
    String(r.subscriptions),
    String(r.initial.notifies),
    fmtBytes(r.initial.bytesIn),
    fmtBytes(r.initial.bytesOut),
    r.initial.ms.toFixed(0),
    String(r.change.notifies),
    fmtBytes(r.change.bytesIn),
    fmtBytes(r.change.bytesOut),
    r.change.ms.toFixed(1),
    String(r.refresh.notifies),
    fmtBytes(r.refresh.bytesIn),
    fmtBytes(r.refresh.bytesOut),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export interface RlsBenchOptions {
  sizes?: readonly number[];
  /** Changes measured per size (different members); the table shows the mean per change. */
  changes?: number;
  /** Print the table (default true). */
  print?: boolean;
}

/** Runs the RLS bench (N = 100 and 1000 by default) and prints its table; returns the rows. */
export async function runRlsBench(opts: RlsBenchOptions = {}): Promise<RlsBenchRow[]> {
  const sizes = opts.sizes ?? [100, 1000];
  const changes = Math.max(1, Math.min(20, opts.changes ?? 5));
  const rows: RlsBenchRow[] = [];
  for (const n of sizes) rows.push(...(await benchSize(Math.max(1, Math.min(5000, n)), changes)));
  if (opts.print ?? true) {
    console.log('\nRLS: one watcher, a list of N members as 1 list subscription (RFC 4662) vs N direct subscriptions');
    console.log('(loopback TCP, in-process Herald, rls.min_notify_interval 0; "in"/"out": SIP bytes the watcher reads/writes;');
    console.log(` change: mean per PUBLISH of one member over ${changes}; initial: until every member's state is known)\n`);
    console.log(table(rows));
    for (const n of sizes) {
      const l = rows.find((r) => r.members === n && r.way === 'list');
      const d = rows.find((r) => r.members === n && r.way === 'direct');
      if (!l || !d) continue;
      const ratio = (a: number, b: number) => (b === 0 ? '–' : `${(a / b).toFixed(2)}×`);
      console.log(
        `N=${n}: one change, list/direct bytes in ${ratio(l.change.bytesIn, d.change.bytesIn)}, NOTIFYs ${l.change.notifies} vs ${d.change.notifies}; ` +
          `initial bytes in+out ${ratio(l.initial.bytesIn + l.initial.bytesOut, d.initial.bytesIn + d.initial.bytesOut)}, messages ${l.initial.messagesIn + l.initial.messagesOut} vs ${d.initial.messagesIn + d.initial.messagesOut}; ` +
          `refresh bytes in+out ${ratio(l.refresh.bytesIn + l.refresh.bytesOut, d.refresh.bytesIn + d.refresh.bytesOut)}`,
      );
    }
  }
  return rows;
}

function parseArgs(argv: readonly string[]): RlsBenchOptions & RlsLoadOptions & { load: 'no' | 'also' | 'only' } {
  const o: RlsBenchOptions & RlsLoadOptions & { load: 'no' | 'also' | 'only' } = { load: 'also' };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--sizes') o.sizes = (argv[++i] ?? '').split(',').map(Number).filter((x) => Number.isInteger(x) && x > 0);
    else if (argv[i] === '--changes') o.changes = Number(argv[++i]) || 5;
    else if (argv[i] === '--no-load') o.load = 'no';
    else if (argv[i] === '--load-only') o.load = 'only';
    else if (argv[i] === '--rounds') o.rounds = Number(argv[++i]) || 2;
    else if (argv[i] === '--seconds') o.seconds = Number(argv[++i]) || 20;
    else if (argv[i] === '--only') o.only = argv[++i] === 'kamailio' ? 'kamailio' : 'herald';
    else if (argv[i] === '--prof') o.profDir = argv[++i] ?? 'bench/results/prof-rls';
    else throw new Error(`rls bench: unknown option ${argv[i]} (use --sizes 100,1000 --changes 5 --no-load|--load-only --rounds 2 --seconds 20 --only herald|kamailio --prof DIR)`);
  }
  return o;
}

async function main(o: ReturnType<typeof parseArgs>): Promise<void> {
  if (o.load !== 'only') await runRlsBench(o);
  // Imported here: bench/rls-load.ts builds on this module's UA.
  if (o.load !== 'no') await (await import('./rls-load.js')).runRlsLoadBench(o);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(parseArgs(process.argv.slice(2))).then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
