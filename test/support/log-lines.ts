// Log lines exactly as Herald's logger writes them: pino JSON, and pino-pretty as src/log.ts sets it
// up for a terminal (without colours), for tests of what reads Herald's logs (the fail2ban filter).
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { prettyFactory } from 'pino-pretty';

export function logLines(write: (log: pino.Logger) => void): { json: string[]; pretty: string[] } {
  const json: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      json.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  write(pino({ level: 'info' }, sink));
  const pretty = prettyFactory({ colorize: false, translateTime: 'SYS:standard' });
  return { json, pretty: json.map((l) => pretty(l).trimEnd()) };
}

/** The reasons issue 16's throttle and digest checks log, in the fixed shape fail2ban matches. */
export const AUTH_FAILURE_REASONS = ['wrong-password', 'unknown-user', 'stale-nonce', 'replay', 'uri-mismatch', 'foreign-publish', 'throttled'] as const;

export function authFailure(log: pino.Logger, src: string, aor: string, reason: string): void {
  log.warn({ src, aor, reason }, `auth failure: src=${src} aor=${aor} reason=${reason}`);
}

/**
 * A pino logger (at info unless told) whose lines (parsed) a test reads as they are written: what the
 * code decided (a warning, a delay it scheduled) is asserted on, not when things happened.
 */
export function capturedLog(level: pino.Level = 'info'): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level }, sink), lines };
}
