// The standards figures of `npm run bench` (issue 15): what partial presence (RFC 5262/5263) and
// conditional notification (RFC 5839) save on the wire.
//
//   node dist/bench/standards.js [--lists 1000]       (or runStandardsBench() from bench/run.ts)
//
// Herald runs in-process (test/support/herald.ts: loopback, auth off, policy allow). Measured at the
// watcher, from the bytes its socket reads (whole SIP messages), means over 5 changes:
//   1. one change of one member of a 100-member list (one list subscription, partial RLMI);
//   2. one change of one device of a presentity with 10 devices (10 publications composed), to a PIDF
//      watcher and to a watcher that accepts application/pidf-diff+xml;
//      and the PUBLISH of one tuple's change by an EPA holding all 10 tuples: PIDF vs a pidf-diff patch;
//   3. a restart with N list subscriptions (10-member lists, UDP watchers, SQLite store): the NOTIFYs
//      and bytes the restart itself sends, then one refresh of every subscription without and with
//      Suppress-If-Match (RFC 5839: 204, no NOTIFY).
// Bounded: every wait has a deadline, at most 100 requests outstanding; loopback only. No assertions.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startTestHerald, tempDir, type DeepPartial, type TestHerald } from '../test/support/herald.js';
import { freePort } from '../test/support/process.js';
import { xcap } from '../test/support/xcap.js';
import { BenchUA, fmtBytes, minus, quiet, until, windowed, type Dialog, type Wire } from './rls.js';

const D = 'example.test';
const OWNER = { username: 'owner', password: 'owner-pw' };
const CHANGES = 5;
const rnd = (): string => randomBytes(6).toString('hex');
const uri = (u: string): string => `sip:${u}@${D}`;
const tagOf = (m: Wire): string => /;tag=([^;\s>]+)/.exec(m.header('to', 't') ?? '')?.[1] ?? '';

const tuple = (id: string, basic: string, note: string): string =>
  `<tuple id="${id}"><status><basic>${basic}</basic></status><contact priority="0.8">sip:${id}@192.0.2.10;transport=tcp</contact><note>${note}</note><timestamp>2026-12-02T01:00:00Z</timestamp></tuple>`;
const presence = (entity: string, body: string): string =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${entity}">${body}</presence>`;

const LIST_HEADERS = ['Event: presence', 'Supported: eventlist', 'Accept: application/rlmi+xml, multipart/related, application/pidf+xml', 'Expires: 3600'];

async function withHerald<T>(overrides: DeepPartial, fn: (h: TestHerald) => Promise<T>): Promise<T> {
  const h = await startTestHerald(overrides);
  try {
    return await fn(h);
  } finally {
    await h.stop();
  }
}

async function putServices(h: TestHerald, lists: Record<string, string[]>): Promise<void> {
  await h.herald.users.add(uri(OWNER.username), OWNER.password);
  const doc = `<?xml version="1.0" encoding="UTF-8"?>
<rls-services xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists">
${Object.entries(lists).map(([s, ms]) => `<service uri="${s}"><list name="l">${ms.map((m) => `<rl:entry uri="${m}"/>`).join('')}</list><packages><package>presence</package></packages></service>`).join('\n')}
</rls-services>`;
  const put = await xcap('PUT', h.xcapUrl(), `rls-services/users/${uri(OWNER.username)}/index`, OWNER, doc, 'application/rls-services+xml');
  if (put.status !== 201 && put.status !== 200) throw new Error(`standards bench: XCAP PUT ${put.status} ${put.body}`);
}

async function publishAs(ua: BenchUA, who: string, body: string, o: { etag?: string; contentType?: string } = {}): Promise<{ etag: string; bytes: number }> {
  const before = ua.counters().bytesOut;
  const r = await ua.request('PUBLISH', who, {
    from: who,
    fromTag: rnd(),
    callId: rnd(),
    cseq: 1,
    headers: ['Event: presence', 'Expires: 3600', ...(o.etag ? [`SIP-If-Match: ${o.etag}`] : [])],
    body,
    ...(o.contentType ? { contentType: o.contentType } : {}),
  });
  if (!r.startLine.startsWith('SIP/2.0 200')) throw new Error(`standards bench: PUBLISH ${who}: ${r.startLine}`);
  return { etag: r.header('sip-etag') ?? '', bytes: ua.counters().bytesOut - before };
}

/** Bytes the watcher reads per change (mean), until `seen()` and quiet. */
async function perChange(w: BenchUA, change: (i: number) => Promise<() => boolean>): Promise<{ bytes: number; notifies: number }> {
  let bytes = 0;
  let notifies = 0;
  for (let i = 0; i < CHANGES; i++) {
    const c0 = w.counters();
    const seen = await change(i);
    await until(seen, `change ${i}`);
    await quiet(w, 200);
    const d = minus(w.counters(), c0);
    bytes += d.bytesIn;
    notifies += d.notifies;
  }
  return { bytes: Math.round(bytes / CHANGES), notifies: notifies / CHANGES };
}

/** A member with 3 devices (one document of 3 tuples), device `changed` showing `note`. */
const member = (m: string, note: string, changed = 1): string => presence(m, ['a', 'b', 'c'].map((t, i) => tuple(`${t}`, 'open', i === changed ? note : `device ${t}`)).join(''));

/** 1. One member of a 100-member list changes (members of 3 devices); parts PIDF or pidf-diff. */
async function listChange(diff: boolean): Promise<{ bytes: number; notifies: number }> {
  return withHerald({ rls: { min_notify_interval: 0 } }, async (h) => {
    const members = Array.from({ length: 100 }, (_, i) => uri(`m${i}`));
    const list = uri('buddies');
    await putServices(h, { [list]: members });
    const pub = await BenchUA.open(h.port('tcp'));
    const w = await BenchUA.open(h.port('tcp'));
    try {
      const etags = new Map<string, string>();
      await windowed(members, 50, async (m) => void etags.set(m, (await publishAs(pub, m, member(m, 'initial'))).etag));
      let last = '';
      w.onNotify((m) => (last = m.body));
      const headers = diff ? LIST_HEADERS.map((x) => (x.startsWith('Accept:') ? `${x}, application/pidf-diff+xml` : x)) : LIST_HEADERS;
      const r = await w.request('SUBSCRIBE', list, { from: uri('watcher'), fromTag: rnd(), callId: rnd(), cseq: 1, headers });
      if (!r.startLine.startsWith('SIP/2.0 200')) throw new Error(`standards bench: list SUBSCRIBE ${r.startLine}`);
      await until(() => last.includes(members[99]!), 'list full state');
      await quiet(w, 300);
      return await perChange(w, async (i) => {
        const note = `change-${i}-${rnd()}`;
        const who = members[i * 17]!;
        etags.set(who, (await publishAs(pub, who, member(who, note), { etag: etags.get(who)! })).etag);
        return () => last.includes(note);
      });
    } finally {
      pub.close();
      w.close();
    }
  });
}

/** 2. One device of a presentity with 10 devices changes; PIDF and pidf-diff watchers. */
async function deviceChange(): Promise<{ pidf: { bytes: number; notifies: number }; diff: { bytes: number; notifies: number }; publishFull: number; publishPatch: number }> {
  return withHerald({}, async (h) => {
    const alice = uri('alice');
    const pub = await BenchUA.open(h.port('tcp'));
    const wp = await BenchUA.open(h.port('tcp'));
    const wd = await BenchUA.open(h.port('tcp'));
    try {
      const etags: string[] = [];
      for (let i = 0; i < 10; i++) etags.push((await publishAs(pub, alice, presence(alice, tuple(`dev${i}`, 'open', `device ${i}`)))).etag);
      let lastP = '';
      let lastD = '';
      wp.onNotify((m) => (lastP = m.body));
      wd.onNotify((m) => (lastD = m.body));
      for (const [ua, accept] of [[wp, 'application/pidf+xml'], [wd, 'application/pidf+xml, application/pidf-diff+xml']] as const) {
        const r = await ua.request('SUBSCRIBE', alice, { from: uri('watcher'), fromTag: rnd(), callId: rnd(), cseq: 1, headers: ['Event: presence', `Accept: ${accept}`, 'Expires: 3600'] });
        if (!r.startLine.startsWith('SIP/2.0 200')) throw new Error(`standards bench: SUBSCRIBE ${r.startLine}`);
      }
      await until(() => lastP.includes('dev9') && lastD.includes('dev9'), 'initial NOTIFYs');
      await quiet(wp, 300);
      await quiet(wd, 300);
      const notes: string[] = [];
      const c0 = { p: wp.counters(), d: wd.counters() };
      let sumP = 0;
      let sumD = 0;
      for (let i = 0; i < CHANGES; i++) {
        const note = `change-${i}-${rnd()}`;
        notes.push(note);
        const p0 = wp.counters().bytesIn;
        const d0 = wd.counters().bytesIn;
        etags[i] = (await publishAs(pub, alice, presence(alice, tuple(`dev${i}`, 'open', note)), { etag: etags[i]! })).etag;
        await until(() => lastP.includes(note) && lastD.includes(note), `device change ${i}`);
        await quiet(wp, 200);
        await quiet(wd, 200);
        sumP += wp.counters().bytesIn - p0;
        sumD += wd.counters().bytesIn - d0;
      }
      const pidf = { bytes: Math.round(sumP / CHANGES), notifies: minus(wp.counters(), c0.p).notifies / CHANGES };
      const diff = { bytes: Math.round(sumD / CHANGES), notifies: minus(wd.counters(), c0.d).notifies / CHANGES };

      // An EPA holding all 10 tuples in one document: the PUBLISH of one tuple's change.
      const bob = uri('bob');
      const all = (changed: number, note: string) => Array.from({ length: 10 }, (_, i) => tuple(`dev${i}`, 'open', i === changed ? note : `device ${i}`)).join('');
      const first = await publishAs(pub, bob, `<?xml version="1.0" encoding="UTF-8"?>\n<p:pidf-full xmlns="urn:ietf:params:xml:ns:pidf" xmlns:p="urn:ietf:params:xml:ns:pidf-diff" entity="${bob}" version="1">${all(-1, '')}</p:pidf-full>`, { contentType: 'application/pidf-diff+xml' });
      const full = await publishAs(pub, bob, presence(bob, all(3, 'changed')), { etag: first.etag });
      const bob2 = uri('bob2');
      const f2 = await publishAs(pub, bob2, `<?xml version="1.0" encoding="UTF-8"?>\n<p:pidf-full xmlns="urn:ietf:params:xml:ns:pidf" xmlns:p="urn:ietf:params:xml:ns:pidf-diff" entity="${bob2}" version="1">${all(-1, '')}</p:pidf-full>`, { contentType: 'application/pidf-diff+xml' });
      const patch = await publishAs(pub, bob2, `<?xml version="1.0" encoding="UTF-8"?>\n<p:patch xmlns="urn:ietf:params:xml:ns:pidf" xmlns:p="urn:ietf:params:xml:ns:pidf-diff" version="2"><p:replace sel="*/tuple[@id='dev3']/note/text()">changed</p:replace></p:patch>`, { etag: f2.etag, contentType: 'application/pidf-diff+xml' });
      return { pidf, diff, publishFull: full.bytes, publishPatch: patch.bytes };
    } finally {
      pub.close();
      wp.close();
      wd.close();
    }
  });
}

interface RestartFigures {
  restoreNotifies: number;
  restoreBytes: number;
  refreshNotifies: number;
  refreshBytes: number;
  answers: Record<string, number>;
}

/** 3. A restart with `n` list subscriptions; then every subscription refreshed once. */
async function restart(n: number, conditional: boolean): Promise<RestartFigures> {
  const dir = tempDir();
  const port = await freePort();
  const overrides: DeepPartial = {
    sip: { listen: [`udp:127.0.0.1:${port}`, `tcp:127.0.0.1:${port}`] },
    store: { url: `sqlite://${join(dir, 'herald.sqlite')}` },
    rls: { min_notify_interval: 0 },
  };
  const lists: Record<string, string[]> = {};
  for (let l = 0; l < 10; l++) lists[uri(`list${l}`)] = Array.from({ length: 10 }, (_, i) => uri(`u${l}x${i}`));
  const everyone = Object.values(lists).flat();
  const w = await BenchUA.openUdp(port);
  const dialogs: Dialog[] = [];
  const etags = new Map<string, string>();
  w.onNotify((m) => {
    const tag = m.header('sip-etag');
    const callId = m.header('call-id', 'i');
    if (tag && callId) etags.set(callId, tag);
  });
  try {
    let h = await startTestHerald(overrides);
    try {
      await putServices(h, lists);
      const pub = await BenchUA.open(h.port('tcp'));
      await windowed(everyone, 50, async (m) => void (await publishAs(pub, m, presence(m, tuple('t1', 'open', 'here')))));
      pub.close();
      const services = Object.keys(lists);
      await windowed(Array.from({ length: n }, (_, i) => i), 20, async (i) => {
        const d: Dialog = { target: services[i % services.length]!, callId: rnd(), fromTag: rnd(), toTag: '', cseq: 1 };
        const r = await w.request('SUBSCRIBE', d.target, { from: uri(`w${i}`), ...d, headers: LIST_HEADERS });
        if (!r.startLine.startsWith('SIP/2.0 200')) throw new Error(`standards bench: SUBSCRIBE ${r.startLine}`);
        d.toTag = tagOf(r);
        dialogs.push(d);
      });
      await until(() => dialogs.every((d) => etags.has(d.callId)), 'every list NOTIFY');
      await quiet(w, 500);
    } finally {
      await h.stop();
    }
    // The same store and port: the subscriptions are restored.
    const c0 = w.counters();
    h = await startTestHerald(overrides);
    try {
      await quiet(w, 1500);
      const restored = minus(w.counters(), c0);
      const c1 = w.counters();
      const answers: Record<string, number> = {};
      await windowed(dialogs, 20, async (d) => {
        d.cseq++;
        const sim = conditional ? [`Suppress-If-Match: ${etags.get(d.callId)}`] : [];
        const r = await w.request('SUBSCRIBE', d.target, { from: uri('w'), ...d, headers: [...LIST_HEADERS, ...sim] });
        const code = r.startLine.slice(8, 11);
        answers[code] = (answers[code] ?? 0) + 1;
      });
      await quiet(w, 1000);
      const refreshed = minus(w.counters(), c1);
      return { restoreNotifies: restored.notifies, restoreBytes: restored.bytesIn, refreshNotifies: refreshed.notifies, refreshBytes: refreshed.bytesIn, answers };
    } finally {
      await h.stop();
    }
  } finally {
    w.close();
  }
}

export interface StandardsBenchOptions {
  /** List subscriptions in the restart figure. */
  lists?: number;
}

export async function runStandardsBench(o: StandardsBenchOptions = {}): Promise<void> {
  const n = Math.max(10, Math.min(5000, o.lists ?? 1000));
  const list = await listChange(false);
  const listDiff = await listChange(true);
  const dev = await deviceChange();
  const plain = await restart(n, false);
  const cond = await restart(n, true);
  console.log('\nStandards (issue 15): SIP bytes the watcher reads, loopback TCP/UDP, in-process Herald, mean of 5 changes\n');
  console.log(`one change of one member (3 devices) of a 100-member list, partial RLMI:`);
  console.log(`  PIDF parts:      ${fmtBytes(list.bytes)} in ${list.notifies} NOTIFY`);
  console.log(`  pidf-diff parts: ${fmtBytes(listDiff.bytes)} in ${listDiff.notifies} NOTIFY, ${(list.bytes / Math.max(1, listDiff.bytes)).toFixed(2)}× less`);
  console.log(`one change of one device of a presentity with 10 devices:`);
  console.log(`  PIDF watcher:      ${fmtBytes(dev.pidf.bytes)} in ${dev.pidf.notifies} NOTIFY (whole document)`);
  console.log(`  pidf-diff watcher: ${fmtBytes(dev.diff.bytes)} in ${dev.diff.notifies} NOTIFY (RFC 5263 patch), ${(dev.pidf.bytes / Math.max(1, dev.diff.bytes)).toFixed(2)}× less`);
  console.log(`  PUBLISH of that change by an EPA holding all 10 tuples: PIDF ${fmtBytes(dev.publishFull)}, pidf-diff patch ${fmtBytes(dev.publishPatch)} (RFC 5264)`);
  console.log(`restart with ${n} list subscriptions (10 lists of 10, UDP watchers, SQLite store):`);
  for (const [name, r] of [['refresh without Suppress-If-Match', plain], ['refresh with Suppress-If-Match (RFC 5839)', cond]] as const) {
    console.log(
      `  restore: ${r.restoreNotifies} NOTIFYs, ${fmtBytes(r.restoreBytes)}; then ${name}: ${r.refreshNotifies} NOTIFYs, ${fmtBytes(r.refreshBytes)} read (answers ${Object.entries(r.answers).map(([k, v]) => `${v}× ${k}`).join(', ')})`,
    );
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--lists');
  runStandardsBench(i > 0 ? { lists: Number(process.argv[i + 1]) } : {}).then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
