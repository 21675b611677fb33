// Forwarding one MESSAGE like a stateful proxy (RFC 3261 §16.6–16.7), for this one method: one client
// transaction per target (parallel forking to every registered contact, RFC 3428 §7), the first 2xx
// answers at once, otherwise the best final response once all are in (§16.7 step 6), and 408 when
// nothing final came within the relay's time (shorter than the sender's Timer F, so the sender hears
// it). Non-INVITE requests cannot be CANCELled; branches still running are left to time out.
import type { OutgoingRequest, SipResponse } from '../sip/message.js';
import type { ImOutcome } from './types.js';

export interface Target {
  uri: string;
  /** Route set (an outbound proxy, with ;lr). */
  route?: readonly string[];
}

export interface Forwarded extends ImOutcome {
  /** The To tag of the answer relayed (a 2xx from a UA carries one). */
  toTag?: string;
}

export type Send = (req: OutgoingRequest) => Promise<SipResponse | undefined>;

/** What a branch that got no final answer in time counts as (RFC 3261 §16.7 step 2: a 408). */
export const TIMED_OUT: Forwarded = Object.freeze({ status: 408, reason: 'Request Timeout' });
const TIMEOUT = TIMED_OUT;

/**
 * RFC 3261 §16.7 step 6: among final non-2xx responses, a 6xx wins, else the lowest class; within it
 * an answer a device gave (486 from a busy phone) before the 408 Herald counts for a silent one; 503
 * is passed on as 500 (a 503 would make the sender's proxy fail over from Herald itself).
 */
export function bestResponse(all: readonly Forwarded[]): Forwarded {
  if (all.length === 0) return TIMEOUT;
  const six = all.find((r) => r.status >= 600);
  const rank = (r: Forwarded): number => Math.floor(r.status / 100) * 2 + (r === TIMED_OUT ? 1 : 0);
  const pick = six ?? [...all].sort((a, b) => rank(a) - rank(b) || a.status - b.status)[0]!;
  return pick.status === 503 ? { status: 500, reason: 'Server Internal Error' } : pick;
}

export function forward(send: Send, base: Omit<OutgoingRequest, 'uri' | 'route'>, targets: readonly Target[], timeoutMs: number): Promise<Forwarded> {
  return new Promise<Forwarded>((resolve) => {
    const finals: Forwarded[] = [];
    let pending = targets.length;
    let done = false;
    const finish = (r: Forwarded): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => finish(finals.find((r) => r.status >= 200 && r.status < 300) ?? bestResponse([...finals, TIMEOUT])), timeoutMs);
    timer.unref?.();
    if (pending === 0) finish({ status: 480, reason: 'Temporarily Unavailable' });
    for (const t of targets) {
      void send({ ...base, uri: t.uri, ...(t.route ? { route: t.route } : {}) }).then(
        (res) => {
          const r: Forwarded = res ? { status: res.status, reason: res.reason, ...(res.to.params['tag'] ? { toTag: res.to.params['tag'] } : {}) } : TIMEOUT;
          finals.push(r);
          if (r.status >= 200 && r.status < 300) finish(r);
          else if (--pending === 0) finish(bestResponse(finals));
        },
        () => {
          finals.push(TIMEOUT);
          if (--pending === 0) finish(bestResponse(finals));
        },
      );
    }
  });
}
