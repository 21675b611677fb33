// Where Herald starts shedding (issue 16, src/sip/overload.ts): a stepped open-loop rate sweep over UDP
// to a fresh Herald (its default [limits]), once for SUBSCRIBE and once for PUBLISH. Each step offers
// one rate for STEP_MS (the load generator paces request k at t0 + k/rate, a window wide enough not
// to throttle it), and reports what came back: 2xx per second, the share answered 503 (with
// Retry-After, RFC 3261 §21.5.4), requests left unanswered, and the time to answer of the requests
// still served (p50/p99). The sweep ends after the step where half the requests were shed, or at the
// last rate. Bounded: a warm-up and at most RATES steps of STEP_MS (each ≤ rate × STEP_MS requests), each phase also
// capped in time by the generator. Herald only: the Kamailio configuration of the bench sheds nothing
// (no pike/ratelimit), so there is no shedding point to compare.
//
// Called from run.ts (`--no-overload` skips it), which owns the servers and the load generator
// process: `session` starts a fresh Herald with its own generator and stops both by pid afterwards.
import type { Phase, PhaseResult } from './protocol.js';
import { cpuSeconds, machineBusySeconds } from './proc.js';

/** What run.ts's load generator offers (its Loadgen class). */
export interface PhaseRunner {
  phase(p: Phase): Promise<PhaseResult>;
}

/** Runs `body` against a fresh Herald and its own load generator (run.ts's withServer). */
export type FreshHerald = (body: (gen: PhaseRunner, pids: number[]) => Promise<void>) => Promise<string | undefined>;

const RATES = [250, 500, 1000, 2000, 4000, 8000] as const;
const QUICK_RATES = [500, 2000, 8000] as const;
const STEP_MS = 2000;
/** The generator gives up on a request after 8 s: a window of rate × 8 s never holds the pace back. */
const GIVE_UP_S = 8;
/** A step "sheds" when at least this share of its requests got 503. */
const SHEDDING = 0.01;

export interface StepRow {
  method: 'SUBSCRIBE' | 'PUBLISH';
  offered: number;
  sentPerS: number;
  okPerS: number;
  shed: number;
  unanswered: number;
  p50: number | undefined;
  p99: number | undefined;
  serverCpuUtil: number;
  otherCores: number;
}

function row(method: StepRow['method'], offered: number, r: PhaseResult, cpuS: number, machineS: number): StepRow {
  const wallS = r.wallMs / 1000;
  const sendS = Math.min(wallS, STEP_MS / 1000);
  const n503 = r.statuses['503'] ?? 0;
  return {
    method,
    offered,
    sentPerS: r.sent / sendS,
    okPerS: r.requestMs > 0 ? (r.ok * 1000) / r.requestMs : 0,
    shed: r.sent > 0 ? n503 / r.sent : 0,
    unanswered: r.sent > 0 ? (r.statuses['timeout'] ?? 0) / r.sent : 0,
    p50: r.answered?.p50,
    p99: r.answered?.p99,
    serverCpuUtil: wallS > 0 ? cpuS / wallS : 0,
    otherCores: wallS > 0 ? Math.max(0, machineS - cpuS - r.generatorCpuS) / wallS : 0,
  };
}

function phaseFor(method: StepRow['method'], rate: number, step: number): Phase {
  const count = Math.round((rate * STEP_MS) / 1000);
  const window = rate * GIVE_UP_S;
  const timing = { ratePerS: rate, maxMs: STEP_MS, drainMs: 1500 };
  if (method === 'SUBSCRIBE') {
    // New subscriptions, 10 watchers per presentity (each answered NOTIFY is the generator's work too).
    return { kind: 'subscribe', prefix: `o${step}s`, presentities: Math.max(1, Math.ceil(count / 10)), watchersPer: 10, window, ...timing };
  }
  // Each presentity publishes again once answered (SIP-If-Match); a step's first round makes new
  // publications, so the warm-up and all steps together (≤ 4,800) stay below the default per-source
  // cap of 5,000 (limits.max_publications_per_source).
  const presentities = Math.min(Math.ceil(rate / 2), 1400);
  return { kind: 'publish', prefix: `o${step}p`, presentities, count, window: Math.min(window, presentities), ...timing };
}

async function sweep(method: StepRow['method'], fresh: FreshHerald, rates: readonly number[], log: (s: string) => void): Promise<StepRow[]> {
  const rows: StepRow[] = [];
  const err = await fresh(async (gen, pids) => {
    // Warm-up at the lowest rate, not reported: a fresh process's first seconds (JIT, store) would
    // read as load and be shed.
    await gen.phase(phaseFor(method, rates[0]!, rates.length));
    for (const [i, rate] of rates.entries()) {
      const cpu0 = cpuSeconds(pids);
      const m0 = machineBusySeconds();
      const r = await gen.phase(phaseFor(method, rate, i));
      const one = row(method, rate, r, cpuSeconds(pids) - cpu0, machineBusySeconds() - m0);
      rows.push(one);
      log(`overload: ${method} offered ${rate}/s: sent ${one.sentPerS.toFixed(0)}/s, 2xx ${one.okPerS.toFixed(0)}/s, 503 ${(one.shed * 100).toFixed(1)}%, unanswered ${(one.unanswered * 100).toFixed(1)}%`);
      if (one.shed >= 0.5) break;
    }
  });
  if (err) log(`overload: ${method} sweep failed: ${err}`);
  return rows;
}

const fmt = (x: number | undefined, d = 0): string => (x === undefined ? '–' : x.toFixed(d));

/** The sweep's table and the shedding points; returns the rows (for latest.json). */
export async function runOverloadBench(fresh: FreshHerald, quick: boolean, log: (s: string) => void): Promise<StepRow[]> {
  const rates = quick ? QUICK_RATES : RATES;
  const rows = [...(await sweep('SUBSCRIBE', fresh, rates, log)), ...(await sweep('PUBLISH', fresh, rates, log))];
  console.log('\nOverload: open-loop UDP rate sweep, a fresh Herald per method, default [limits], steps of 2 s');
  console.log('method     offered/s  sent/s   2xx/s   503 share  unanswered  served p50 ms  p99 ms  Herald CPU  other cores');
  for (const r of rows) {
    console.log(
      `${r.method.padEnd(10)} ${fmt(r.offered).padStart(9)} ${fmt(r.sentPerS).padStart(7)} ${fmt(r.okPerS).padStart(7)} ${`${fmt(r.shed * 100, 1)}%`.padStart(10)} ${`${fmt(r.unanswered * 100, 1)}%`.padStart(11)} ${fmt(r.p50, 1).padStart(14)} ${fmt(r.p99, 1).padStart(7)} ${fmt(r.serverCpuUtil, 2).padStart(11)} ${fmt(r.otherCores, 2).padStart(12)}`,
    );
  }
  for (const method of ['SUBSCRIBE', 'PUBLISH'] as const) {
    const first = rows.find((r) => r.method === method && r.shed >= SHEDDING);
    const last = rows.filter((r) => r.method === method).at(-1);
    if (first) console.log(`${method}: sheds from ${first.offered}/s offered (${fmt(first.shed * 100, 1)}% answered 503; served p50 ${fmt(first.p50, 1)} ms, p99 ${fmt(first.p99, 1)} ms)`);
    else if (last) console.log(`${method}: no shedding up to ${last.offered}/s offered`);
  }
  return rows;
}
