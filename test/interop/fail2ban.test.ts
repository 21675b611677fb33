// The fail2ban filter shipped in docs/ against the real fail2ban-regex (Debian's fail2ban): every
// authentication failure Herald's logger writes, in JSON and pretty, is a hit with a recognised date;
// other lines are missed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AUTH_FAILURE_REASONS, authFailure, logLines } from '../support/log-lines.js';
import { ROOT } from './peers.js';

const FAIL2BAN_REGEX = '/usr/bin/fail2ban-regex';
const FILTER = join(ROOT, 'docs', 'fail2ban', 'filter.d', 'herald.conf');

test('fail2ban-regex finds every auth failure in JSON and pretty logs, and nothing else', { timeout: 60_000 }, async (t) => {
  if (!existsSync(FAIL2BAN_REGEX)) {
    const why = `${FAIL2BAN_REGEX} is missing: run scripts/install-peers.sh as root`;
    if (process.env.CI === 'true') assert.fail(why);
    t.skip(why);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'herald-fail2ban-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { json, pretty } = logLines((log) => {
    AUTH_FAILURE_REASONS.forEach((r, i) => authFailure(log, `198.51.100.${i + 1}`, i % 2 ? '-' : 'sip:alice@example.test', r));
    log.info('Herald listening on udp:127.0.0.1:5060');
    log.warn({ why: 'Bad Content-Length' }, 'malformed SIP message');
  });
  for (const [name, lines] of [['json', json], ['pretty', pretty]] as const) {
    const file = join(dir, `${name}.log`);
    writeFileSync(file, lines.join('\n') + '\n');
    const out = await new Promise<string>((resolve, reject) =>
      execFile(FAIL2BAN_REGEX, [file, FILTER], { timeout: 30_000 }, (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout))),
    );
    const n = AUTH_FAILURE_REASONS.length;
    // Pretty lines carry their fields on the lines after the message: only the message line can match.
    const lineCount = name === 'json' ? `${n + 2} lines` : '\\d+ lines';
    assert.match(out, new RegExp(`Lines: ${lineCount}, 0 ignored, ${n} matched, \\d+ missed`), `${name}:\n${out}`);
    assert.match(out, new RegExp(`\\[${n + 2}\\] ${name === 'json' ? '"time":\\{LEPOCH\\}' : '\\{\\^LN-BEG\\}\\\\\\[Year'}`), `${name}: every message line's date recognised\n${out}`);
  }
});
