// The bench's load generator: a separate process (run.ts starts it with an IPC channel, pinned to its
// own core when it can), plain UDP sockets connected to the server under test, requests from string
// templates, a bounded window of outstanding requests, UDP retransmission (RFC 3261 Timer E, capped)
// and a 200 for every NOTIFY. It counts, times and matches; run.ts turns that into figures.
//
// Every loop here is bounded: phases by count and by time (maxMs), drains by drainMs, each request by
// GIVE_UP_MS, and the process itself by its lifetime argument (argv[2], ms).
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { isToLoadgen, type FromLoadgen, type PhaseResult, type PublishPhase, type SubscribePhase, type Target } from './protocol.js';
import { openConnectedSockets } from './udp.js';
import { okFor, receive, pidfBody, publishRequest, subscribeRequest, type Parsed } from './sip.js';

const T1 = 500;
const T2 = 4000;
/** A request with no final response after this long counts as a timeout (and frees its slot). */
const GIVE_UP_MS = 8000;
const TICK_MS = 50;
const EXPIRES = 3600;
const lifetimeMs = Math.min(Number(process.argv[2]) || 600_000, 3_600_000);

type Final = (status: number | 'timeout', p: Parsed | undefined) => void;

/** A SUBSCRIBE shed (503) or unanswered is sent again, after RESUBSCRIBE_MS × the tries so far. */
const SUBSCRIBE_TRIES = 6;
const RESUBSCRIBE_MS = 1000;

interface Pending {
  sock: number;
  data: Buffer;
  firstAt: number;
  nextAt: number;
  interval: number;
  onFinal: Final;
}

function send(m: FromLoadgen): void {
  process.send?.(m);
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

class Generator {
  private readonly id = randomBytes(4).toString('hex');
  private seq = 0;
  private readonly inflight = new Map<string, Pending>();
  private retransmits = 0;
  private socketErrors = 0;

  // NOTIFY accounting for the phase in progress.
  private notifies = 0;
  private notifyRetransmits = 0;
  private lastNotifyAt = 0;
  private seenNotify = new Set<string>();
  private tokenPrefix = '\u0000';
  private sendTimes = new Float64Array(0);
  private latencies: number[] = [];
  /** First send → 2xx of each request served in the phase, ms. */
  private answerTimes: number[] = [];
  private phaseNo = 0;
  /** SUBSCRIBEs of the last subscribe phase sent again after a 503 or no answer. */
  private resubscribed = 0;
  /**
   * Each presentity's publisher, kept across phases: a later phase on the same presentities (the paced
   * one after the closed loop) goes on modifying the publication it made (SIP-If-Match) instead of
   * adding a second one beside it. Two publications of one presentity are composed differently by the
   * two servers (Kamailio kept the older tuple of the same id, so no NOTIFY of the paced phase carried
   * its latency token).
   */
  private readonly publishers = new Map<string, { callId: string; fromTag: string; cseq: number; etag: string | undefined }>();
  private readonly ticker: NodeJS.Timeout;

  private constructor(
    private readonly sockets: dgram.Socket[],
    private readonly sentBy: string[],
    readonly domain: string,
    /** The first socket the publish phases use (0: the same ones as the subscribe phases). */
    private readonly publishBase: number,
    /** Sockets per target. */
    private readonly perTarget: number,
  ) {
    sockets.forEach((s, i) => {
      s.on('message', (d) => this.onMessage(i, d));
      s.on('error', () => this.socketErrors++);
    });
    this.ticker = setInterval(() => this.tick(), TICK_MS);
  }

  /**
   * `count` sockets connected to `target`; with `publishTarget` (a cluster: watchers on one node,
   * publishers on another), `count` more connected there, which the publish phases use.
   */
  static async open(target: Target, domain: string, count: number, publishTarget?: Target, split = false): Promise<Generator> {
    const watch = await openConnectedSockets(target.host, target.port, count);
    const publish = publishTarget ? await openConnectedSockets(publishTarget.host, publishTarget.port, count) : { sockets: [], sentBy: [] };
    if (split && publishTarget) {
      // Both nodes share the work: sockets alternate A, B, A, B…, so consecutive watchers of a
      // presentity and consecutive presentities' publishers land on alternate nodes.
      const sockets = watch.sockets.flatMap((s, i) => [s, publish.sockets[i]!]);
      const sentBy = watch.sentBy.flatMap((s, i) => [s, publish.sentBy[i]!]);
      return new Generator(sockets, sentBy, domain, 0, 2 * count);
    }
    return new Generator([...watch.sockets, ...publish.sockets], [...watch.sentBy, ...publish.sentBy], domain, publishTarget ? count : 0, count);
  }

  get ports(): number[] {
    return this.sentBy.map((s) => Number(s.split(':')[1]));
  }

  close(): void {
    clearInterval(this.ticker);
    for (const s of this.sockets) s.close();
  }

  private nextId(): string {
    return `${this.id}${(this.seq++).toString(36)}`;
  }

  private request(sock: number, branch: string, text: string, onFinal: Final): void {
    const data = Buffer.from(text, 'latin1');
    const now = performance.now();
    this.inflight.set(branch, { sock, data, firstAt: now, nextAt: now + T1, interval: T1, onFinal });
    this.sockets[sock]!.send(data);
  }

  /** Timer E (capped at T2) and the give-up time, for at most `window` requests: cheap to scan. */
  private tick(): void {
    const now = performance.now();
    for (const [branch, p] of this.inflight) {
      if (now - p.firstAt >= GIVE_UP_MS) {
        this.inflight.delete(branch);
        p.onFinal('timeout', undefined);
      } else if (now >= p.nextAt) {
        this.retransmits++;
        this.sockets[p.sock]!.send(p.data);
        p.interval = Math.min(p.interval * 2, T2);
        p.nextAt = now + p.interval;
      }
    }
  }

  private onMessage(sock: number, d: Buffer): void {
    const r = receive(d, this.inflight);
    if (!r) return;
    const { p, msg } = r;
    if (r.waiting) {
      if (p.status < 300) this.answerTimes.push(performance.now() - r.waiting.firstAt);
      r.waiting.onFinal(p.status, p);
      return;
    }
    if (p.method !== 'NOTIFY') return;
    this.sockets[sock]!.send(Buffer.from(okFor(p), 'latin1'));
    if (this.seenNotify.has(p.branch)) {
      this.notifyRetransmits++;
      return;
    }
    this.seenNotify.add(p.branch);
    const now = performance.now();
    this.notifies++;
    this.lastNotifyAt = now;
    const at = msg.indexOf(this.tokenPrefix, p.bodyStart);
    if (at < 0) return;
    let n = 0;
    let i = at + this.tokenPrefix.length;
    let digits = 0;
    for (; i < msg.length && digits < 12; i++, digits++) {
      const c = msg.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      n = n * 10 + c;
    }
    if (digits > 0 && n < this.sendTimes.length && this.sendTimes[n]! > 0) this.latencies.push(now - this.sendTimes[n]!);
  }

  private beginPhase(): { t0: number; cpu: NodeJS.CpuUsage; retx: number } {
    this.phaseNo++;
    this.notifies = 0;
    this.notifyRetransmits = 0;
    this.lastNotifyAt = 0;
    this.seenNotify = new Set();
    this.latencies = [];
    this.answerTimes = [];
    this.tokenPrefix = `bt${this.id}p${this.phaseNo}n`;
    this.resubscribed = 0;
    return { t0: performance.now(), cpu: process.cpuUsage(), retx: this.retransmits };
  }

  /** Waits for NOTIFYs still arriving: stops after `quietMs` without one, or at `maxMs`. */
  private async drain(from: number, maxMs: number, quietMs = 400): Promise<void> {
    const end = from + maxMs;
    for (let i = 0; i < 10_000; i++) {
      const now = performance.now();
      if (now >= end || now - Math.max(from, this.lastNotifyAt) >= quietMs) return;
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  private finish(
    kind: PhaseResult['kind'],
    start: { t0: number; cpu: NodeJS.CpuUsage; retx: number },
    counts: { sent: number; ok: number; statuses: Record<string, number>; timeCapped: boolean; lastFinalAt: number },
  ): PhaseResult {
    const cpu = process.cpuUsage(start.cpu);
    let latency: PhaseResult['latency'];
    if (kind === 'publish' && this.latencies.length > 0) {
      const sorted = Float64Array.from(this.latencies).sort();
      latency = { matched: sorted.length, p50: round2(percentile(sorted, 0.5)), p90: round2(percentile(sorted, 0.9)), p99: round2(percentile(sorted, 0.99)), max: round2(sorted[sorted.length - 1]!) };
    }
    const answeredSorted = Float64Array.from(this.answerTimes).sort();
    const answered = answeredSorted.length > 0 ? { p50: round2(percentile(answeredSorted, 0.5)), p99: round2(percentile(answeredSorted, 0.99)) } : undefined;
    const result: PhaseResult = {
      kind,
      ...(answered ? { answered } : {}),
      sent: counts.sent,
      ok: counts.ok,
      statuses: counts.statuses,
      retransmits: this.retransmits - start.retx,
      timeCapped: counts.timeCapped,
      requestMs: Math.max(0, counts.lastFinalAt - start.t0),
      notifies: this.notifies,
      notifyRetransmits: this.notifyRetransmits,
      notifyMs: this.lastNotifyAt > 0 ? this.lastNotifyAt - start.t0 : 0,
      latency,
      wallMs: performance.now() - start.t0,
      generatorCpuS: (cpu.user + cpu.system) / 1e6,
      resubscribed: kind === 'subscribe' ? this.resubscribed : 0,
    };
    // Free the phase's bookkeeping before the next one (and before the server's memory is read).
    this.seenNotify = new Set();
    this.latencies = [];
    this.answerTimes = [];
    this.sendTimes = new Float64Array(0);
    return result;
  }

  /**
   * Runs `total` requests with at most `window` outstanding and stops sending at `maxMs`. `make(k)`
   * sends request k (or returns false when nothing can be sent now); resolves once none is in flight.
   */
  private windowed(total: number, window: number, maxMs: number, t0: number, ratePerS: number | undefined, make: (k: number, done: Final) => boolean): Promise<{ sent: number; ok: number; statuses: Record<string, number>; timeCapped: boolean; lastFinalAt: number }> {
    const statuses: Record<string, number> = {};
    let sent = 0;
    let ok = 0;
    let outstanding = 0;
    let lastFinalAt = t0;
    let timeCapped = false;
    const deadline = t0 + maxMs;
    return new Promise((resolve) => {
      let settled = false;
      const fill = (): void => {
        if (settled) return;
        const now = performance.now();
        // Paced: request k may leave at t0 + k / rate (a token bucket one request deep).
        const allowed = ratePerS === undefined ? total : Math.min(total, Math.floor(((now - t0) * ratePerS) / 1000) + 1);
        while (outstanding < window && sent < allowed) {
          if (performance.now() >= deadline) {
            timeCapped = true;
            break;
          }
          if (!make(sent, done)) break;
          sent++;
          outstanding++;
        }
        if (ratePerS !== undefined && !timeCapped && now >= deadline) timeCapped = true;
        if (outstanding === 0 && (sent >= total || timeCapped)) {
          settled = true;
          resolve({ sent, ok, statuses, timeCapped, lastFinalAt });
        }
      };
      const done: Final = (status) => {
        outstanding--;
        const key = String(status);
        statuses[key] = (statuses[key] ?? 0) + 1;
        if (typeof status === 'number' && status >= 200 && status < 300) {
          ok++;
          lastFinalAt = performance.now();
        }
        fill();
      };
      fill();
      // A phase whose window is full when the deadline passes is finished by the answers (or by
      // GIVE_UP_MS); this catches the case where nothing was in flight to call fill() again.
      // Paced phases are driven by this timer (every 2 ms, so requests leave evenly, not in bursts).
      const guard = setInterval(
        () => {
          if (settled) clearInterval(guard);
          else fill();
        },
        ratePerS === undefined ? 100 : 2,
      );
    });
  }

  async subscribe(ph: SubscribePhase): Promise<PhaseResult> {
    const start = this.beginPhase();
    const total = ph.presentities * ph.watchersPer;
    const deadline = start.t0 + ph.maxMs;
    let retried = 0;
    const counts = await this.windowed(total, ph.window, ph.maxMs, start.t0, ph.ratePerS, (k, done) => {
      const i = Math.floor(k / ph.watchersPer);
      const j = k % ph.watchersPer;
      const sock = k % this.perTarget;
      const presentity = `sip:${ph.prefix}${i}@${this.domain}`;
      const user = `w${j}x${ph.prefix}${i}`;
      // The subscriptions are the phase's set-up, not its measurement: one a server sheds (503, its
      // overload control) or does not answer is asked for again, a bounded number of times, the
      // request still counting against the window (so the generator backs off with it).
      const attempt = (n: number): void => {
        const branch = `z9hG4bK${this.nextId()}`;
        this.request(
          sock,
          branch,
          subscribeRequest({
            via: { sentBy: this.sentBy[sock]!, branch },
            presentity,
            watcher: `sip:${user}@${this.domain}`,
            fromTag: this.nextId(),
            callId: `${this.nextId()}@bench`,
            contact: `sip:${user}@${this.sentBy[sock]!}`,
            expires: EXPIRES,
          }),
          (status, p) => {
            if ((status === 503 || status === 'timeout') && n < SUBSCRIBE_TRIES && performance.now() + RESUBSCRIBE_MS * n < deadline) {
              retried++;
              setTimeout(() => attempt(n + 1), RESUBSCRIBE_MS * n);
              return;
            }
            done(status, p);
          },
        );
      };
      attempt(1);
      return true;
    });
    this.resubscribed = retried;
    await this.drain(Math.max(counts.lastFinalAt, start.t0), ph.drainMs);
    return this.finish('subscribe', start, counts);
  }

  async publish(ph: PublishPhase): Promise<PhaseResult> {
    const start = this.beginPhase();
    this.sendTimes = new Float64Array(ph.count);
    const busy = new Uint8Array(ph.presentities);
    // Each presentity is one publisher: one Call-ID and From tag, its CSeq counting up, and the branch
    // built from the CSeq (as sipp's scenarios must: its [branch] repeats inside a <loop>, and a
    // repeated branch is rightly answered as a retransmission).
    const dialogs = Array.from({ length: ph.presentities }, (_, i) => {
      const name = `${ph.prefix}${i}`;
      let d = this.publishers.get(name);
      if (!d) {
        d = { callId: `${this.nextId()}@bench`, fromTag: this.nextId(), cseq: 0, etag: undefined };
        this.publishers.set(name, d);
      }
      return d;
    });
    const notes = ['Available', 'In a meeting'];
    const basics = ['open', 'closed'] as const;
    let rr = 0;
    const window = Math.min(ph.window, ph.presentities);
    const counts = await this.windowed(ph.count, window, ph.maxMs, start.t0, ph.ratePerS, (k, done) => {
      let i = -1;
      for (let tries = 0; tries < ph.presentities; tries++) {
        const c = (rr + tries) % ph.presentities;
        if (busy[c] === 0) {
          i = c;
          break;
        }
      }
      if (i < 0) return false;
      rr = (i + 1) % ph.presentities;
      busy[i] = 1;
      const sock = this.publishBase + (i % this.perTarget);
      const dlg = dialogs[i]!;
      dlg.cseq++;
      const branch = `z9hG4bK-${this.id}-${this.phaseNo}-${i}-${dlg.cseq}`;
      const presentity = `sip:${ph.prefix}${i}@${this.domain}`;
      const note = `${notes[dlg.cseq % 2]} ${this.tokenPrefix}${k}`;
      this.sendTimes[k] = performance.now();
      this.request(
        sock,
        branch,
        publishRequest({
          via: { sentBy: this.sentBy[sock]!, branch },
          presentity,
          fromTag: dlg.fromTag,
          callId: dlg.callId,
          cseq: dlg.cseq,
          etag: dlg.etag,
          expires: EXPIRES,
          body: pidfBody(presentity, note, basics[dlg.cseq % 2]!),
        }),
        (status, p) => {
          busy[i] = 0;
          // A 412 (or a lost answer) leaves the ETag unknown: the next PUBLISH is an initial one.
          dlg.etag = status === 200 && p?.etag ? p.etag : undefined;
          done(status, p);
        },
      );
      return true;
    });
    await this.drain(Math.max(counts.lastFinalAt, start.t0), ph.drainMs);
    return this.finish('publish', start, counts);
  }

  get errors(): number {
    return this.socketErrors;
  }
}

let gen: Generator | undefined;
const lifetime = setTimeout(() => {
  send({ type: 'error', message: `load generator lifetime (${lifetimeMs} ms) reached` });
  gen?.close();
  process.exit(3);
}, lifetimeMs);
lifetime.unref();

process.on('disconnect', () => {
  gen?.close();
  process.exit(0);
});

process.on('message', (m: unknown) => {
  if (!isToLoadgen(m)) return;
  void (async () => {
    try {
      if (m.type === 'start') {
        gen = await Generator.open(m.target, m.domain, m.sockets, m.publishTarget, m.split === true);
        send({ type: 'ready', ports: gen.ports });
      } else if (m.type === 'phase') {
        if (!gen) throw new Error('phase before start');
        const result = m.phase.kind === 'subscribe' ? await gen.subscribe(m.phase) : await gen.publish(m.phase);
        send({ type: 'result', result });
      } else {
        gen?.close();
        process.exit(0);
      }
    } catch (e) {
      send({ type: 'error', message: (e as Error).message });
    }
  })();
});
