// The cluster of issue 10 as the interop suite runs it: a real redis-server, several Herald processes
// on loopback (each its own port and temp dir, one `sip.public_host`, `[cluster] redis` set) and a
// real Kamailio with the `dispatcher` module in front of them (kamailio/dispatcher.cfg, record-routing,
// so NOTIFYs and in-dialog requests pass through it). Everything is started and stopped by pid.
//
// A SIP dialog helper (Watcher) talks to the cluster through Kamailio only, and steers a request to
// node N with "X-Herald-Node: N" (the dispatcher config's test hook; Kamailio removes it).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import sip from 'sip';
import { SKIP_WITHOUT_REDIS, TestRedis } from '../support/redis.js';
import { TestUA, rnd, type Msg } from '../support/ua.js';
import { Kamailio, requireKamailio } from './kamailio/kamailio.js';
import { DOMAIN, freePort, heraldCli, startHerald, type Herald } from './peers.js';

export const uri = (user: string): string => `sip:${user}@${DOMAIN}`;

export interface ClusterOptions {
  /** Herald processes (default 3). */
  nodes?: number;
  /** Seconds (default 3: the tests stay short; the default of the config is 10). */
  lease?: number;
  /** Users added (password `<user>-pw`) with `herald user add` on the shared store before the nodes start. */
  users?: readonly string[];
}

export interface Cluster {
  redis: TestRedis;
  kamailio: Kamailio;
  /** Kamailio's port on 127.0.0.1: the cluster's one public address. */
  port: number;
  /** nodes[0] is node 1 (X-Herald-Node: 1). */
  nodes: Herald[];
  /** A UDP user agent talking to Kamailio, closed when the test ends. */
  ua(): Promise<TestUA>;
  /** The node (1-based) whose port sent this NOTIFY through Kamailio (the rport Kamailio wrote in its Via). */
  senderOf(m: Msg): number | undefined;
}

/** Redis, the nodes and Kamailio in front; undefined (the test skipped) when a peer is missing. */
export async function startCluster(t: TestContext, o: ClusterOptions = {}): Promise<Cluster | undefined> {
  if (!requireKamailio(t)) return undefined;
  if (SKIP_WITHOUT_REDIS) {
    if (process.env.CI === 'true') assert.fail(SKIP_WITHOUT_REDIS);
    t.skip(SKIP_WITHOUT_REDIS);
    return undefined;
  }
  // `--save ''` and an append-only file: a restart keeps the data, as a production Redis would.
  const redis = await TestRedis.start();
  t.after(() => redis.dispose());
  const port = await freePort();
  const publicHost = `127.0.0.1:${port}`;
  const nodes: Herald[] = [];
  const count = o.nodes ?? 3;
  for (let i = 1; i <= count; i++) {
    nodes.push(
      await startHerald(t, {
        publicHost,
        cluster: { redis: redis.url, lease: o.lease ?? 3, nodeId: `node${i}` },
        // Users go into the shared store once, through the first node's config.
        beforeStart: async ({ configFile }) => {
          if (i === 1) for (const u of o.users ?? []) await heraldCli(configFile, ['user', 'add', uri(u), '--password', `${u}-pw`]);
        },
      }),
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'herald-dispatcher-'));
  const list = join(dir, 'dispatcher.list');
  // Set 1: every node (the balancer's choice); set 1N: node N alone (the tests' X-Herald-Node).
  writeFileSync(list, [...nodes.map((n) => `1 sip:127.0.0.1:${n.port}`), ...nodes.map((n, i) => `1${i + 1} sip:127.0.0.1:${n.port}`), ''].join('\n'));
  const kamailio = new Kamailio(port, dir, [], 'dispatcher.cfg', { LIST: list, PING: '1' });
  t.after(async () => {
    await kamailio.stop();
    if (process.env.HERALD_INTEROP_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  });
  await kamailio.start();
  const uas: TestUA[] = [];
  t.after(() => uas.forEach((u) => u.close()));
  return {
    redis,
    kamailio,
    port,
    nodes,
    async ua() {
      const ua = await TestUA.open('udp', '127.0.0.1', port);
      uas.push(ua);
      return ua;
    },
    senderOf(m) {
      const rport = m.raw.headers.via?.[1]?.params['rport'];
      const i = nodes.findIndex((n) => String(n.port) === rport);
      return i < 0 ? undefined : i + 1;
    },
  };
}

/**
 * One subscription dialog of a watcher, through Kamailio: its route set (Record-Route of the 2xx),
 * its remote target (the cluster's Contact), its own CSeq, and every NOTIFY it received.
 */
export class Watcher {
  readonly callId = rnd();
  readonly fromTag = rnd();
  private cseq = 0;
  toTag: string | undefined;
  private route: string | undefined;
  private target: string;
  private readonly taken = new Set<Msg>();

  constructor(
    readonly ua: TestUA,
    readonly watcher: string,
    readonly resource: string,
    readonly extra: Record<string, string> = {},
  ) {
    this.target = resource;
  }

  /** The initial SUBSCRIBE (or, once the dialog exists, a refresh) steered to `node`; Expires 0 ends it. */
  async subscribe(node?: number, expires = 600): Promise<Msg> {
    const inDialog = this.toTag !== undefined;
    const r = await this.ua.request('SUBSCRIBE', this.target, {
      from: this.watcher,
      fromTag: this.fromTag,
      to: this.resource,
      ...(inDialog ? { toTag: this.toTag } : {}),
      callId: this.callId,
      cseq: ++this.cseq,
      headers: {
        Event: 'presence',
        Expires: String(expires),
        ...this.extra,
        ...(node ? { 'X-Herald-Node': String(node) } : {}),
        ...(inDialog && this.route ? { Route: this.route } : {}),
      },
    });
    if (!inDialog && r.status !== undefined && r.status < 300) {
      this.toTag = r.toTag;
      // RFC 3261 §12.1.2: the route set is the Record-Route of the answer, in reverse order.
      const rr = (r.raw.headers['record-route'] ?? []).flatMap((x) => (x.uri ? [`<${sip.stringifyUri(x.uri)}>`] : []));
      this.route = rr.length > 0 ? rr.reverse().join(', ') : undefined;
      const contact = r.raw.headers.contact;
      const target = contact && contact !== '*' ? contact[0]?.uri : undefined;
      if (target) this.target = sip.stringifyUri(target);
    }
    return r;
  }

  /** Every NOTIFY of this dialog so far, in arrival order. */
  notifies(): Msg[] {
    return this.ua.requests.filter((m) => m.method === 'NOTIFY' && m.callId === this.callId);
  }

  /** The next NOTIFY of this dialog not taken yet that matches `pred`. */
  async next(pred: (m: Msg) => boolean = () => true, timeoutMs = 10_000): Promise<Msg> {
    const m = await this.ua.nextRequest((x) => x.method === 'NOTIFY' && x.callId === this.callId && pred(x), timeoutMs, this.taken);
    for (const x of this.notifies()) if (x.cseq <= m.cseq) this.taken.add(x);
    return m;
  }

  /** The highest CSeq of the NOTIFYs received so far. */
  lastCseq(): number {
    return Math.max(-1, ...this.notifies().map((m) => m.cseq));
  }
}

/**
 * One CSeq sequence in a dialog (RFC 3261 §12.2.1.1): a CSeq number stands for one request only — a
 * repeated number must be a retransmission (same body, same Subscription-State), never a second NOTIFY.
 */
export function assertOneCseqSequence(w: Watcher, why = ''): void {
  const byCseq = new Map<number, Msg>();
  for (const m of w.notifies()) {
    const first = byCseq.get(m.cseq);
    if (!first) {
      byCseq.set(m.cseq, m);
      continue;
    }
    assert.equal(m.body, first.body, `two different NOTIFYs with CSeq ${m.cseq} in dialog ${w.callId} ${why}`);
    assert.equal(m.h('subscription-state'), first.h('subscription-state'), `two different NOTIFYs with CSeq ${m.cseq} in dialog ${w.callId} ${why}`);
  }
}

/** The <note> of a PIDF body (the tests publish one note per state). */
export const noteOf = (m: Msg): string | undefined => /<note[^>]*>([^<]*)<\/note>/.exec(m.body)?.[1];
