// A subscription outlives a crash: Herald is SIGKILLed and started again on the same config and store; a
// PUBLISH after the restart must reach the watcher in its existing dialog with a higher NOTIFY CSeq.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertSippOk, requireSipp, runSipp, startHerald, startSipp } from './peers.js';

function cseqOf(line: string | undefined): number {
  const m = /cseq=(\d+)/.exec(line ?? '');
  return m ? Number(m[1]) : NaN;
}

test('after SIGKILL and restart, a PUBLISH is NOTIFYed in the old dialog with a higher CSeq', { timeout: 120_000 }, async (t) => {
  if (!requireSipp(t)) return;
  const herald = await startHerald(t);
  const watcher = await startSipp('watch.xml', {
    herald,
    timeoutS: 75,
    keys: { presentity: 'alice', watcher: 'bob', note: 'after-restart' },
  });
  await watcher.waitForLog(/herald-interop ready/, 20_000);
  // The subscription was accepted and its first NOTIFY answered: Herald must have stored both (it
  // awaits the store before answering and before sending a NOTIFY), so crash it at once.
  const before = herald.pid();
  await herald.stop('SIGKILL');
  await herald.start();
  assert.notEqual(herald.pid(), before, 'Herald did not restart');

  assertSippOk(await runSipp('publish-once.xml', { herald, keys: { presentity: 'alice', note: 'after-restart' } }), herald);
  const result = await watcher.result;
  assertSippOk(result, herald);

  const lines = result.logLines();
  const initial = cseqOf(lines.find((l) => l.includes('step=initial')));
  const change = cseqOf(lines.find((l) => /step=change .*note=after-restart /.test(l)));
  assert.ok(Number.isFinite(initial) && Number.isFinite(change), `CSeqs not found in the watcher's log\n${result.describe()}`);
  assert.ok(change > initial, `NOTIFY CSeq after the restart (${change}) is not above the one before (${initial})\n${result.describe()}`);
});

test('a publication and a subscription both survive SIGKILL: the old ETag still modifies, the watcher is told', { timeout: 120_000 }, async (t) => {
  if (!requireSipp(t)) return;
  const herald = await startHerald(t);
  const published = await runSipp('publish-once.xml', { herald, keys: { presentity: 'alice', note: 'before-restart' } });
  assertSippOk(published, herald);
  const etag = /etag=(\S+)/.exec(published.logLines().find((l) => l.includes('published')) ?? '')?.[1];
  assert.ok(etag, `no SIP-ETag in the publisher's log\n${published.describe()}`);

  const watcher = await startSipp('watch.xml', {
    herald,
    timeoutS: 75,
    keys: { presentity: 'alice', watcher: 'bob', note: 'after-restart' },
  });
  const initialLine = await watcher.waitForLog(/herald-interop ready/, 20_000).then(() =>
    watcher.waitForLog(/step=initial/, 1_000),
  );
  assert.match(initialLine, /note=before-restart /, 'the first NOTIFY does not carry the published note');
  await herald.stop('SIGKILL');
  await herald.start();

  // The entity-tag handed out before the crash must still name the publication (else 412).
  assertSippOk(await runSipp('publish-modify.xml', { herald, keys: { presentity: 'alice', etag, note: 'after-restart' } }), herald);
  const result = await watcher.result;
  assertSippOk(result, herald);
  const lines = result.logLines();
  const initial = cseqOf(lines.find((l) => l.includes('step=initial')));
  const change = cseqOf(lines.find((l) => /step=change .*note=after-restart /.test(l)));
  assert.ok(change > initial, `NOTIFY CSeq after the restart (${change}) is not above the one before (${initial})\n${result.describe()}`);
});
