// A list subscription outlives a crash (RFC 4662 §5.2 versions, RFC 6665 dialogs): Herald runs as a
// child process, a watcher subscribes to an rls-services list and sees version 0 (full) and 1 (one
// change); Herald is SIGKILLed and started again on the same store; a PUBLISH then reaches the watcher in
// the same dialog, with a higher CSeq and the next RLMI versions (never 0 or 1 again).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TestUA, pidf, rnd, type Msg } from '../support/ua.js';
import { CLI, HeraldProcess, freePort } from '../support/process.js';
import { tempDir } from '../support/herald.js';
import { xcap } from '../support/xcap.js';
import { decodeList, memberBody, rlsServices, type ListNotify } from '../support/rls.js';

const D = 'example.test';
const uri = (u: string): string => `sip:${u}@${D}`;
const OWNER = { username: 'owner', password: 'owner-pw' };
const LIST = uri('buddies');
const MEMBERS = [uri('bob'), uri('carol'), uri('dave')];

const SERVICES = rlsServices({ [LIST]: MEMBERS });

interface Decoded extends ListNotify {
  /** Resource URI → its PIDF part. */
  bodies: Map<string, string>;
}

function decode(m: Msg): Decoded {
  const n = decodeList(m);
  const bodies = new Map<string, string>();
  for (const r of n.rlmi.resources) {
    const body = memberBody(n, r.uri);
    if (r.instances[0]?.cid !== undefined) assert.ok(body !== undefined, `no part for cid ${r.instances[0].cid}`);
    if (body !== undefined) bodies.set(r.uri, body);
  }
  return { ...n, bodies };
}

/** The embedded XCAP server's root URL from Herald's start line (`listen` holds "xcap:http://…"). */
function xcapUrlOf(startLine: Record<string, unknown>): string {
  const listen = startLine['listen'];
  assert.ok(Array.isArray(listen), `no listen list in ${JSON.stringify(startLine)}`);
  const x = listen.find((a): a is string => typeof a === 'string' && a.startsWith('xcap:'));
  assert.ok(x, `no xcap address in ${JSON.stringify(listen)}`);
  return x.slice('xcap:'.length);
}

describe('resource list server: restart', () => {
  const procs: HeraldProcess[] = [];
  after(async () => {
    for (const p of procs) await p.stop('SIGKILL');
  });

  test('SIGKILL and start again: the list dialog goes on with the next RLMI version and a higher CSeq', { timeout: 60_000 }, async (t) => {
    const dir = tempDir();
    const port = await freePort();
    const config = HeraldProcess.writeConfig(dir, port, '[rls]\nmin_notify_interval = 0\n');
    await promisify(execFile)(process.execPath, [CLI, 'user', 'add', uri(OWNER.username), '--password', OWNER.password, '--config', config], { timeout: 20_000 });
    const p = new HeraldProcess(config);
    procs.push(p);
    const first = await p.start();
    const put = await xcap('PUT', xcapUrlOf(first), `rls-services/users/${uri(OWNER.username)}/index`, OWNER, SERVICES, 'application/rls-services+xml');
    assert.equal(put.status, 201, put.body);

    const pub = await TestUA.open('udp', '127.0.0.1', port);
    // UDP: the watcher's address stays the same across Herald's restart (a TCP flow would not).
    const w = await TestUA.open('udp', '127.0.0.1', port);
    const publish = async (who: string, note: string) => {
      const r = await pub.request('PUBLISH', who, { from: who, headers: { Event: 'presence', Expires: '600' }, body: pidf(who, { note }) });
      assert.equal(r.status, 200);
    };
    try {
      await publish(uri('bob'), 'bob-1');
      const callId = rnd();
      const fromTag = rnd();
      const res = await w.request('SUBSCRIBE', LIST, {
        from: uri('watcher'),
        fromTag,
        callId,
        headers: { Event: 'presence', Expires: '600', Supported: 'eventlist', Accept: 'application/rlmi+xml, multipart/related, application/pidf+xml' },
      });
      assert.equal(res.status, 200);
      assert.equal(res.h('require'), 'eventlist');
      const taken = new Set<Msg>();
      const next = async (pred: (d: Decoded) => boolean, what: string): Promise<Decoded> => {
        const m = await w.nextRequest((x) => x.method === 'NOTIFY' && x.callId === callId && !taken.has(x) && pred(decode(x)), 8000, taken).catch((e: Error) => {
          throw new Error(`${what}: ${e.message}\nHerald output:\n${p.output.slice(-3000)}`);
        });
        taken.add(m);
        return decode(m);
      };

      const n0 = await next(() => true, 'version 0');
      assert.equal(n0.rlmi.version, 0);
      assert.equal(n0.rlmi.fullState, true);
      assert.deepEqual(n0.rlmi.resources.map((r) => r.uri).sort(), [...MEMBERS].sort());
      assert.match(n0.bodies.get(uri('bob'))!, /bob-1/);

      await publish(uri('bob'), 'bob-2');
      const n1 = await next((d) => d.bodies.get(uri('bob'))?.includes('bob-2') === true, 'version 1');
      assert.equal(n1.rlmi.version, 1);
      assert.equal(n1.rlmi.fullState, false);
      assert.deepEqual(n1.rlmi.resources.map((r) => r.uri), [uri('bob')]);
      assert.ok(n1.msg.cseq > n0.msg.cseq);

      // Both NOTIFYs were answered: Herald stored the dialog with its CSeq and version before sending.
      assert.equal(await p.stop('SIGKILL'), 'SIGKILL');
      const again = await p.start();
      assert.equal((again['subscriptions'] as { restored: number }).restored, 1, `the list dialog is restored: ${JSON.stringify(again)}`);

      // RFC 5839: nothing changed while Herald was down, so the restored list costs no full-state
      // NOTIFY; a refresh naming the entity-tag of the last NOTIFY is answered 204, no NOTIFY.
      const etag = n1.msg.h('sip-etag');
      assert.ok(etag, 'list NOTIFYs carry an entity-tag for the whole list (RFC 5839 §6.5)');
      await new Promise((r) => setTimeout(r, 1500));
      const notifies = () => [...w.requests].filter((m) => m.method === 'NOTIFY' && m.callId === callId).length;
      assert.equal(notifies(), 2, 'no NOTIFY for the restored, unchanged list');
      const cond = await w.request('SUBSCRIBE', LIST, { from: uri('watcher'), fromTag, toTag: res.toTag!, callId, cseq: 2, headers: { Event: 'presence', Expires: '600', Supported: 'eventlist', 'Suppress-If-Match': etag } });
      assert.equal(cond.status, 204, 'refresh with the current entity-tag: 204 No Notification');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(notifies(), 2, 'and no NOTIFY');

      await publish(uri('carol'), 'carol-after-restart');
      const change = await next((d) => d.bodies.get(uri('carol'))?.includes('carol-after-restart') === true, 'the change after the restart');
      // Whatever the restart itself sent (a full state, RFC 4662 allows it) came before the change.
      const after = [...w.requests].filter((m) => m.method === 'NOTIFY' && m.callId === callId && m !== n0.msg && m !== n1.msg).map(decode);
      assert.ok(after.some((d) => d.msg === change.msg));
      let prev = n1;
      for (const d of after) {
        assert.equal(d.msg.fromTag, res.toTag, 'same dialog: From tag = the To tag of the 200');
        assert.equal(d.msg.toTag, fromTag, 'same dialog: To tag = our From tag');
        assert.ok(d.msg.cseq > prev.msg.cseq, `CSeq grows: ${prev.msg.cseq} → ${d.msg.cseq}`);
        assert.equal(d.rlmi.version, prev.rlmi.version + 1, `RLMI version goes on by one: ${prev.rlmi.version} → ${d.rlmi.version}`);
        assert.equal(d.rlmi.uri, LIST);
        if (d.rlmi.fullState) assert.deepEqual(d.rlmi.resources.map((r) => r.uri).sort(), [...MEMBERS].sort(), 'a full state lists every member');
        prev = d;
      }
      t.diagnostic(`NOTIFYs: ${[n0, n1, ...after].map((d) => `cseq ${d.msg.cseq} v${d.rlmi.version}${d.rlmi.fullState ? ' full' : ''} [${d.rlmi.resources.length}]`).join(', ')}`);
      assert.ok(change.rlmi.version >= 2, `version after the restart: ${change.rlmi.version}`);
      // The subscriber's view is complete: bob's state from before the crash, carol's new one.
      const view = new Map<string, string>();
      for (const d of [n0, n1, ...after]) {
        if (d.rlmi.fullState) view.clear();
        for (const [u, b] of d.bodies) view.set(u, b);
      }
      assert.match(view.get(uri('bob'))!, /bob-2/);
      assert.match(view.get(uri('carol'))!, /carol-after-restart/);

      // The dialog still works after the restart: unsubscribe ends it with a terminated NOTIFY.
      const un = await w.request('SUBSCRIBE', LIST, { from: uri('watcher'), fromTag, toTag: res.toTag!, callId, cseq: 3, headers: { Event: 'presence', Expires: '0', Supported: 'eventlist' } });
      assert.equal(un.status, 200);
      const fin = await w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId && /terminated/.test(m.h('subscription-state') ?? ''), 8000);
      assert.ok(fin.cseq > prev.msg.cseq);
      assert.equal(await p.stop('SIGTERM'), 0);
    } finally {
      pub.close();
      w.close();
    }
  });
});
