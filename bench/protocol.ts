// Messages between the bench orchestrator (run.ts) and the load generator process (loadgen.ts),
// over the child's IPC channel.

export interface Target {
  host: string;
  port: number;
}

export interface SubscribePhase {
  kind: 'subscribe';
  /** Presentities sip:<prefix><i>@<domain>, i in [0, presentities). */
  prefix: string;
  presentities: number;
  watchersPer: number;
  window: number;
  /** Pacing: at most this many requests a second (undefined: as fast as the window allows). */
  ratePerS?: number;
  maxMs: number;
  /** After the last answer, how long to wait for NOTIFYs still coming (stops earlier once quiet). */
  drainMs: number;
}

export interface PublishPhase {
  kind: 'publish';
  prefix: string;
  presentities: number;
  count: number;
  /**
   * Outstanding PUBLISH requests; never more than one per presentity, so window = presentities is
   * the closed loop of the issue (each presentity publishes again as soon as its 200 arrives).
   */
  window: number;
  /** Pacing: at most this many PUBLISH a second (undefined: closed loop). */
  ratePerS?: number;
  maxMs: number;
  drainMs: number;
}

export type Phase = SubscribePhase | PublishPhase;

export type ToLoadgen =
  /**
   * publishTarget: PUBLISH goes there (another node of a cluster) instead of to target, from sockets of
   * its own; with split, both nodes get half the watchers and half the publishers.
   */
  | { type: 'start'; target: Target; domain: string; sockets: number; publishTarget?: Target; split?: boolean }
  | { type: 'phase'; phase: Phase }
  | { type: 'stop' };

export interface PhaseResult {
  kind: Phase['kind'];
  /** Requests sent (first transmissions). */
  sent: number;
  /** Final responses 2xx. */
  ok: number;
  /** Final responses by status code, "timeout" for requests that got none. */
  statuses: Record<string, number>;
  /** Requests retransmitted by the generator (a sign of loss or a slow server). */
  retransmits: number;
  /** True when the phase stopped on its time cap rather than its count. */
  timeCapped: boolean;
  /** From the first send to the last final response, ms. */
  requestMs: number;
  /** NOTIFY transactions received during the phase (retransmissions not counted). */
  notifies: number;
  notifyRetransmits: number;
  /** From the first send to the last NOTIFY, ms (0 if none). */
  notifyMs: number;
  /** Publish→NOTIFY latencies matched by token: count and percentiles in ms. */
  latency: { matched: number; p50: number; p90: number; p99: number; max: number } | undefined;
  /** Time to the final answer of the requests answered 2xx (first send to answer): percentiles, ms. */
  answered?: { p50: number; p99: number };
  /** Wall time of the whole phase including the drain, ms. */
  wallMs: number;
  /** The generator's own CPU time during the phase (user + system), seconds. */
  generatorCpuS: number;
  /** Subscribe phases: SUBSCRIBEs sent again after a 503 (overload) or no answer. */
  resubscribed: number;
}

export type FromLoadgen =
  | { type: 'ready'; ports: number[] }
  | { type: 'result'; result: PhaseResult }
  | { type: 'error'; message: string };

export function isToLoadgen(m: unknown): m is ToLoadgen {
  return typeof m === 'object' && m !== null && 'type' in m && typeof (m as { type: unknown }).type === 'string';
}

export function isFromLoadgen(m: unknown): m is FromLoadgen {
  return typeof m === 'object' && m !== null && 'type' in m && typeof (m as { type: unknown }).type === 'string';
}
