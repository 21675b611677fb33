// docs/fail2ban/filter.d/herald.conf against lines Herald's own logger writes: its failregex,
// translated from Python to JavaScript (<HOST> as fail2ban expands it, (?P<n>…) as (?<n>…)), must
// match every authentication failure in the JSON and the pretty format, take the source address as
// the host, and match nothing else Herald logs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AUTH_FAILURE_REASONS, authFailure, logLines } from '../support/log-lines.js';

const FILTER = fileURLToPath(new URL('../../../docs/fail2ban/filter.d/herald.conf', import.meta.url));

/** The failregex lines of a fail2ban filter (a multi-line value continues on indented lines). */
function failregexes(conf: string): string[] {
  const out: string[] = [];
  let inFail = false;
  for (const line of conf.split('\n')) {
    const m = /^failregex\s*=\s*(.*)$/.exec(line);
    if (m) {
      inFail = true;
      if (m[1]!.trim()) out.push(m[1]!.trim());
      continue;
    }
    if (inFail && /^\s+\S/.test(line) && !line.trim().startsWith('#')) out.push(line.trim());
    else if (inFail && !/^\s*$/.test(line)) inFail = false;
  }
  return out;
}

/** fail2ban's <HOST> (an IPv4 or IPv6 address or a host name, simplified) and Python group syntax. */
function toJs(re: string): RegExp {
  return new RegExp(re.replace(/<HOST>/g, '(?<host>(?:\\d{1,3}\\.){3}\\d{1,3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]+|[\\w.-]+)').replace(/\(\?P</g, '(?<'));
}

test('the failregex matches every auth failure line, JSON and pretty, with the source address as host', () => {
  const res = failregexes(readFileSync(FILTER, 'utf8')).map(toJs);
  assert.equal(res.length, 1);
  const cases = AUTH_FAILURE_REASONS.flatMap((reason, i) => [
    { src: `192.0.2.${i + 1}`, aor: 'sip:alice@example.test', reason },
    { src: '2001:db8::7', aor: '-', reason },
  ]);
  const { json, pretty } = logLines((log) => {
    for (const c of cases) authFailure(log, c.src, c.aor, c.reason);
  });
  for (const [format, lines] of [['json', json], ['pretty', pretty]] as const) {
    assert.equal(lines.length, cases.length);
    lines.forEach((line, i) => {
      const m = res.map((r) => r.exec(line)).find((x) => x !== null);
      assert.ok(m, `${format}: no match for ${line}`);
      assert.equal(m.groups?.['host'], cases[i]!.src, `${format}: ${line}`);
    });
  }
  assert.match(pretty[0]!, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d{4}\] WARN \(\d+\): auth failure: src=192\.0\.2\.1 /);
});

test('nothing else Herald logs matches', () => {
  const res = failregexes(readFileSync(FILTER, 'utf8')).map(toJs);
  const { json, pretty } = logLines((log) => {
    log.info({ listen: ['udp:127.0.0.1:5060'] }, 'Herald listening on udp:127.0.0.1:5060');
    log.warn({ why: 'Bad Content-Length', from: 'UDP:192.0.2.9:5060' }, 'malformed SIP message');
    log.info({ key: 'x', status: 481, resource: 'sip:a@example.test' }, 'NOTIFY failed; subscription removed');
    log.warn({ src: '192.0.2.9', aor: 'sip:a@example.test' }, 'auth success: src=192.0.2.9 aor=sip:a@example.test');
    log.warn('auth failure: src=192.0.2.9 aor=sip:a@example.test reason=made-up');
  });
  for (const line of [...json, ...pretty]) assert.ok(res.every((r) => !r.test(line)), `matched: ${line}`);
});
