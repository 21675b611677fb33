// The cluster figure of issue 10 (`npm run bench`, or alone: `node dist/bench/cluster.js [--quick]`).
//
// One Herald node on a Redis; two nodes on one Redis with the watchers on node A and the publishers
// on node B (so every NOTIFY crosses Redis); and two nodes sharing the work (each holds half of every
// presentity's watchers and takes half the PUBLISHes: the whole-machine figure of issue 9, a second
// process taking half the subscriptions with one owner per dialog). Each set-up on a fresh
// redis-server (own temp dir, free loopback port, append-only file as a durable deployment runs it)
// and fresh nodes:
//   1. 50 presentities × 10 watchers SUBSCRIBE at node A (Redis memory per subscription);
//   2. PUBLISH to 200 presentities nobody watches, at node B (node A with one node): Redis commands
//      per PUBLISH alone;
//   3. closed-loop PUBLISH of the 50 watched presentities at node B: NOTIFY/s, publish→NOTIFY p50/p99,
//      Redis commands per NOTIFY = (commands of the phase − PUBLISHes × step 2's per-PUBLISH) / NOTIFYs;
//   4. the same PUBLISHes paced at half of the one-node closed-loop rate, for both set-ups alike:
//      publish→NOTIFY p50/p99 at equal load.
// Redis is measured from its own `INFO commandstats` (commands executed, the bench's own INFO calls
// left out) and `INFO cpu`; a MULTI/EXEC or a pipeline is one round trip but several commands, so
// commands are an upper bound of round trips. Herald's CPU from /proc. No pinning (three processes
// and the generator on two cores). Every phase bounded in count and time; everything stopped by pid.
import { createClient } from '@redis/client';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { SKIP_WITHOUT_REDIS, TestRedis } from '../test/support/redis.js';
import { Loadgen } from './loadgen-client.js';
import type { PhaseResult } from './protocol.js';
import { cpuSeconds, freeUdpPort, machineBusySeconds } from './proc.js';
import { startHerald, type Server } from './targets.js';

const PRESENTITIES = 50;
const WATCHERS = 10;

export interface ClusterBenchOptions {
  quick?: boolean;
  print?: boolean;
}

/** 'apart': watchers on node A, publishers on node B; 'split': both nodes take half of each. */
export type Layout = 'one' | 'apart' | 'split';

/** The figures of one set-up. */
export interface ClusterFigures {
  layout: Layout;
  nodes: number;
  subscriptions: number;
  publishPerS: number;
  notifyPerS: number;
  notifies: number;
  /** NOTIFYs per PUBLISH (10: each reached every watcher). */
  notifiesPerPublish: number;
  latencyP50: number | undefined;
  latencyP99: number | undefined;
  pacedRate: number | undefined;
  pacedP50: number | undefined;
  pacedP99: number | undefined;
  redisCommandsPerPublish: number | undefined;
  redisCommandsPerNotify: number | undefined;
  /** Commands of the closed-loop phase per PUBLISH answered: a watched PUBLISH with its NOTIFYs. */
  redisCommandsPerWatchedPublish: number | undefined;
  /** The commands most called in the closed-loop phase, per NOTIFY. */
  topCommands: [string, number][];
  /** Herald CPU-µs per NOTIFY (every node), Redis CPU-µs per NOTIFY. */
  heraldCpuUsPerNotify: number | undefined;
  redisCpuUsPerNotify: number | undefined;
  /** Redis memory (used_memory) grown by the subscribe phase, per subscription accepted. */
  redisBytesPerSubscription: number | undefined;
  /** PUBLISH answered other than 2xx in the closed loop (e.g. 500 while Redis is away). */
  failed: number;
  /** Answers other than 2xx, by status ("timeout": none), of the SUBSCRIBEs and of the closed-loop PUBLISHes. */
  refused: { subscribe: Record<string, number>; publish: Record<string, number> };
}

interface RedisStats {
  calls: Map<string, number>;
  cpuS: number;
  /** used_memory (INFO memory), bytes. */
  memory: number;
}

type RedisClient = ReturnType<typeof createClient>;

/** Commands executed by Redis so far, by name (`INFO commandstats`), and its CPU seconds (`INFO cpu`). */
async function redisStats(client: RedisClient): Promise<RedisStats> {
  const calls = new Map<string, number>();
  for (const m of (await client.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1]!, Number(m[2]));
  const info = (await client.info('cpu')) + (await client.info('memory'));
  const num = (k: string): number => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return { calls, cpuS: num('used_cpu_user') + num('used_cpu_sys'), memory: num('used_memory') };
}

/** Commands between two readings, by name, without the bench's own INFO. */
function commandsBetween(a: RedisStats, b: RedisStats): Map<string, number> {
  const d = new Map<string, number>();
  for (const [k, v] of b.calls) if (k !== 'info' && v - (a.calls.get(k) ?? 0) > 0) d.set(k, v - (a.calls.get(k) ?? 0));
  return d;
}

const total = (m: Map<string, number>): number => [...m.values()].reduce((x, y) => x + y, 0);

interface Setup {
  redis: TestRedis;
  client: RedisClient;
  nodes: Server[];
  gen: Loadgen;
  dirs: string[];
}

/**
 * A cluster node's config: sip.public_host is required with cluster.redis; the bench sends nothing
 * in-dialog, so each node names itself.
 */
function clusterNode(port: number, redisUrl: string): [string, string, string][] {
  return [
    ['sip', 'public_host', `"127.0.0.1:${port}"`],
    ['cluster', 'redis', `"${redisUrl}"`],
  ];
}

async function startSetup(layout: Layout, log: (s: string) => void): Promise<Setup> {
  const nodes = layout === 'one' ? 1 : 2;
  const redis = await TestRedis.start();
  const setup: Setup = { redis, client: createClient({ url: redis.url }), nodes: [], gen: Loadgen.start(undefined, 180_000), dirs: [] };
  try {
    setup.client.on('error', () => undefined);
    await setup.client.connect();
    for (let i = 0; i < nodes; i++) {
      const dir = mkdtempSync(join(tmpdir(), 'herald-bench-cluster-'));
      setup.dirs.push(dir);
      const port = await freeUdpPort();
      const server = startHerald({ dir, port, cpu: undefined, config: clusterNode(port, redis.url) });
      setup.nodes.push(server);
      await server.ready(20_000);
    }
    const [a, b] = setup.nodes;
    const ready = await setup.gen.call({ type: 'start', target: { host: '127.0.0.1', port: a!.port }, domain: 'example.test', sockets: 4, ...(b ? { publishTarget: { host: '127.0.0.1', port: b.port }, split: layout === 'split' } : {}) }, 10_000);
    if (ready.type !== 'ready') throw new Error('load generator did not start');
    log(`cluster bench: ${LAYOUTS[layout]} (pids ${setup.nodes.map((n) => n.pid).join(', ')}) on ${redis.url}, generator pid ${setup.gen.pid}`);
    return setup;
  } catch (e) {
    await stopSetup(setup);
    throw e;
  }
}

async function stopSetup(s: Setup): Promise<void> {
  await s.gen.stop();
  for (const n of s.nodes) await n.stop();
  await s.client.quit().catch(() => undefined);
  await s.redis.dispose();
  for (const d of s.dirs) rmSync(d, { recursive: true, force: true });
}

/** Runs a phase and reads Redis and the nodes' CPU around it. */
async function measured(s: Setup, run: () => Promise<PhaseResult>): Promise<{ r: PhaseResult; commands: Map<string, number>; redisCpuS: number; redisMemory: number; heraldCpuS: number }> {
  const pids = s.nodes.map((n) => n.pid);
  const r0 = await redisStats(s.client);
  const c0 = cpuSeconds(pids);
  const r = await run();
  const c1 = cpuSeconds(pids);
  const r1 = await redisStats(s.client);
  return { r, commands: commandsBetween(r0, r1), redisCpuS: r1.cpuS - r0.cpuS, redisMemory: r1.memory - r0.memory, heraldCpuS: c1 - c0 };
}

async function oneSetup(layout: Layout, o: ClusterBenchOptions, pacedRate: number | undefined, log: (s: string) => void): Promise<ClusterFigures> {
  const s = await startSetup(layout, log);
  try {
    const closedMs = o.quick ? 4_000 : 10_000;
    const subscribing = await measured(s, () => s.gen.phase({ kind: 'subscribe', prefix: 'c', presentities: PRESENTITIES, watchersPer: WATCHERS, window: 100, maxMs: 20_000, drainMs: 3_000 }));
    const sub = subscribing.r;
    const alone = await measured(s, () => s.gen.phase({ kind: 'publish', prefix: 'u', presentities: 200, count: o.quick ? 1_000 : 3_000, window: 50, maxMs: closedMs, drainMs: 500 }));
    const perPublish = alone.r.ok > 0 ? total(alone.commands) / alone.r.ok : undefined;
    const closed = await measured(s, () => s.gen.phase({ kind: 'publish', prefix: 'c', presentities: PRESENTITIES, count: 2_000_000, window: PRESENTITIES, maxMs: closedMs, drainMs: 3_000 }));
    const c = closed.r;
    const notifyCommands = perPublish !== undefined ? total(closed.commands) - perPublish * c.ok : undefined;
    const rate = pacedRate ?? (c.requestMs > 0 ? (c.ok * 1000) / c.requestMs / 2 : undefined);
    let paced: PhaseResult | undefined;
    if (rate && rate > 0) {
      const ms = o.quick ? 3_000 : 5_000;
      paced = await s.gen.phase({ kind: 'publish', prefix: 'c', presentities: PRESENTITIES, count: Math.ceil((rate * ms) / 1000), window: PRESENTITIES, ratePerS: rate, maxMs: ms + 2_000, drainMs: 3_000 });
    }
    const figures: ClusterFigures = {
      layout,
      nodes: s.nodes.length,
      subscriptions: sub.ok,
      publishPerS: c.requestMs > 0 ? (c.ok * 1000) / c.requestMs : 0,
      notifyPerS: c.notifyMs > 0 ? (c.notifies * 1000) / c.notifyMs : 0,
      notifies: c.notifies,
      notifiesPerPublish: c.ok > 0 ? c.notifies / c.ok : 0,
      latencyP50: c.latency?.p50,
      latencyP99: c.latency?.p99,
      pacedRate: rate,
      pacedP50: paced?.latency?.p50,
      pacedP99: paced?.latency?.p99,
      redisCommandsPerPublish: perPublish,
      redisCommandsPerWatchedPublish: c.ok > 0 ? total(closed.commands) / c.ok : undefined,
      redisCommandsPerNotify: notifyCommands !== undefined && c.notifies > 0 ? Math.max(0, notifyCommands) / c.notifies : undefined,
      topCommands: [...closed.commands].sort((x, y) => y[1] - x[1]).slice(0, 6).map(([k, v]) => [k, c.notifies > 0 ? v / c.notifies : v]),
      heraldCpuUsPerNotify: c.notifies > 0 ? (closed.heraldCpuS * 1e6) / c.notifies : undefined,
      redisCpuUsPerNotify: c.notifies > 0 ? (closed.redisCpuS * 1e6) / c.notifies : undefined,
      redisBytesPerSubscription: sub.ok > 0 ? subscribing.redisMemory / sub.ok : undefined,
      failed: c.sent - c.ok,
      refused: { subscribe: notOk(sub.statuses), publish: notOk(c.statuses) },
    };
    log(`cluster bench: ${LAYOUTS[layout]}: ${sub.ok} subscriptions, ${c.ok} PUBLISH → ${c.notifies} NOTIFY (${fmt(figures.notifyPerS)} NOTIFY/s), ${fmt(perPublish, 1)} Redis commands per PUBLISH alone`);
    for (const n of s.nodes) if (!n.alive) throw new Error(`a Herald node exited during the bench: ${n.output.slice(-2000)}`);
    return figures;
  } finally {
    await stopSetup(s);
  }
}

const notOk = (statuses: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(statuses).filter(([k]) => !/^2\d\d$/.test(k)));

function fmt(x: number | undefined, digits = 0): string {
  if (x === undefined || !Number.isFinite(x)) return '—';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

const LAYOUTS: Record<Layout, string> = { one: '1 node', apart: '2 nodes, A watches, B publishes', split: '2 nodes, work split' };

function table(figures: Partial<Record<Layout, ClusterFigures>>): string {
  const rows: [string, (f: ClusterFigures) => string][] = [
    ['subscriptions (50 × 10)', (f) => fmt(f.subscriptions)],
    ['closed loop: PUBLISH/s', (f) => fmt(f.publishPerS)],
    ['closed loop: NOTIFY/s (whole machine)', (f) => fmt(f.notifyPerS)],
    ['NOTIFYs per PUBLISH (10: none coalesced)', (f) => fmt(f.notifiesPerPublish, 2)],
    ['closed loop: publish→NOTIFY p50 / p99 (ms)', (f) => `${fmt(f.latencyP50, 1)} / ${fmt(f.latencyP99, 1)}`],
    ['paced PUBLISH/s (half of 1 node closed loop)', (f) => fmt(f.pacedRate)],
    ['paced: publish→NOTIFY p50 / p99 (ms)', (f) => `${fmt(f.pacedP50, 2)} / ${fmt(f.pacedP99, 2)}`],
    ['Redis memory per subscription (bytes)', (f) => fmt(f.redisBytesPerSubscription)],
    ['Redis commands per PUBLISH (unwatched)', (f) => fmt(f.redisCommandsPerPublish, 2)],
    ['Redis commands per NOTIFY', (f) => fmt(f.redisCommandsPerNotify, 2)],
    ['Redis commands per watched PUBLISH (with its NOTIFYs)', (f) => fmt(f.redisCommandsPerWatchedPublish, 2)],
    ['Herald CPU-µs per NOTIFY (all nodes)', (f) => fmt(f.heraldCpuUsPerNotify, 1)],
    ['Redis CPU-µs per NOTIFY', (f) => fmt(f.redisCpuUsPerNotify, 1)],
    ['PUBLISH not answered 2xx (closed loop)', (f) => fmt(f.failed)],
  ];
  const layouts = Object.keys(LAYOUTS) as Layout[];
  const pad = (s: string, n: number): string => s.padEnd(n);
  const lpad = (s: string, n: number): string => s.padStart(n);
  const lines = [`${pad('', 52)}${layouts.map((l) => lpad(LAYOUTS[l], 32)).join('')}`];
  for (const [label, get] of rows) lines.push(`${pad('  ' + label, 52)}${layouts.map((l) => lpad(figures[l] ? get(figures[l]) : '—', 32)).join('')}`);
  for (const f of Object.values(figures)) {
    lines.push(`  Redis commands per NOTIFY, closed loop, ${LAYOUTS[f.layout]}: ${f.topCommands.map(([k, v]) => `${k} ${fmt(v, 2)}`).join(', ') || '—'}`);
    const refused = (r: Record<string, number>): string => Object.entries(r).map(([k, v]) => `${v} × ${k}`).join(', ') || 'none';
    lines.push(`  not 2xx, ${LAYOUTS[f.layout]}: SUBSCRIBE ${refused(f.refused.subscribe)}; PUBLISH ${refused(f.refused.publish)}`);
  }
  return lines.join('\n');
}

/** Runs the three set-ups (1 node, 2 apart, 2 split) and prints the table; a set-up that failed is missing. */
export async function runClusterBench(o: ClusterBenchOptions = {}): Promise<Partial<Record<Layout, ClusterFigures>> & { skipped?: string }> {
  const log = (s: string): void => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}`);
  if (SKIP_WITHOUT_REDIS) {
    log(`cluster bench skipped: ${SKIP_WITHOUT_REDIS}`);
    return { skipped: SKIP_WITHOUT_REDIS };
  }
  const machine0 = machineBusySeconds();
  const wall0 = performance.now();
  const out: Partial<Record<Layout, ClusterFigures>> = {};
  for (const layout of Object.keys(LAYOUTS) as Layout[]) {
    try {
      out[layout] = await oneSetup(layout, o, out.one?.pacedRate, log);
    } catch (e) {
      log(`cluster bench, ${LAYOUTS[layout]}: FAILED: ${(e as Error).message}`);
    }
  }
  const load = (machineBusySeconds() - machine0) / ((performance.now() - wall0) / 1000);
  if (o.print !== false) {
    console.log(`\nCluster (issues 10 and 9): Herald nodes on one redis-server (append-only file), not pinned${o.quick ? ' (quick)' : ''}`);
    console.log(table(out));
    console.log(`Machine: ${fmt(load, 2)} of ${cpus().length} cores busy on average over the cluster bench (everything, bench included). Redis "commands" from INFO commandstats: a MULTI/EXEC or pipeline is one round trip but several commands.`);
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runClusterBench({ quick: process.argv.includes('--quick') }).catch((e: unknown) => {
    console.error(`cluster bench failed: ${(e as Error).stack ?? String(e)}`);
    process.exitCode = 1;
  });
}
