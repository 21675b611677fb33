// Long repetitive headers of every kind cost about what a benign header of the same size costs
// (issue 16 #2: `Authorization: Digest ` and 40,000 ';' took 1.9 s through the `sip` package's
// backtracking regexes; blanks in Via/From/Contact, ", " in Route and backslashes in quotes did too).
// Each hostile message is followed by an OPTIONS probe on the same socket; the time to the probe's
// answer is compared with the same measure after a benign header of the same size, in the same run,
// as a ratio of medians (no absolute time).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { TestUA, rnd } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const N = 40_000;
const HEADERS: { name: string; prefix: string; response?: boolean }[] = [
  { name: 'Authorization', prefix: 'Digest ' },
  { name: 'Authorization', prefix: 'Digest username="' },
  { name: 'Proxy-Authorization', prefix: 'Digest ' },
  { name: 'WWW-Authenticate', prefix: 'Digest ', response: true },
  { name: 'Proxy-Authenticate', prefix: 'Digest realm=', response: true },
  { name: 'Via', prefix: 'SIP/2.0/UDP h' },
  { name: 'From', prefix: '<sip:a@b>' },
  { name: 'To', prefix: '"' },
  { name: 'Contact', prefix: '<sip:a@b>' },
  { name: 'Route', prefix: '' },
  { name: 'Record-Route', prefix: '<sip:a@b>' },
  { name: 'Call-ID', prefix: '' },
  { name: 'CSeq', prefix: '1 ' },
  { name: 'Event', prefix: 'presence' },
  { name: 'Content-Type', prefix: 'application/pidf+xml' },
];
const FILLS = [';', ' ', '\t ', '\\', '"\\', ', ', ',', '<', '=', ';a', ';a=', ':', '@', 'a '];

function message(header: string, value: string, response: boolean, port: number): Buffer {
  const start = response ? 'SIP/2.0 401 Unauthorized' : 'OPTIONS sip:example.test SIP/2.0';
  return Buffer.from(
    [
      start,
      `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK${rnd()};rport`,
      'Max-Forwards: 70',
      'From: <sip:x@example.test>;tag=1',
      'To: <sip:example.test>',
      `Call-ID: ${rnd()}`,
      'CSeq: 1 OPTIONS',
      `${header}: ${value}`,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
    'latin1',
  );
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('long repetitive headers are parsed in linear time', () => {
  let h: TestHerald;
  let ua: TestUA;
  before(async () => {
    h = await startTestHerald();
    ua = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
  });
  after(async () => {
    ua.close();
    await h.stop();
  });

  /** Sends `data`, then an OPTIONS; milliseconds until the OPTIONS is answered. */
  async function probeAfter(data: Buffer): Promise<number> {
    const t0 = performance.now();
    ua.sendRaw(data);
    const r = await ua.request('OPTIONS', 'sip:example.test', { from: 'sip:probe@example.test' }, 30_000);
    assert.equal(r.status, 200);
    return performance.now() - t0;
  }

  /** Median time after `hostile` and after `benign`, measured alternately `n` times each. */
  async function alternate(hostile: Buffer, benign: Buffer, n: number): Promise<{ hostile: number; benign: number }> {
    const a: number[] = [];
    const b: number[] = [];
    for (let k = 0; k < n; k++) {
      a.push(await probeAfter(hostile));
      b.push(await probeAfter(benign));
    }
    return { hostile: median(a), benign: median(b) };
  }

  const benignOf = (name: string): Buffer => message('X-Benign', 'a'.repeat(name.length + 16 + N - 'X-Benign'.length), false, ua.localPort);

  test(`the four auth headers with ${N} ';' after "Digest ": about the time of a benign header of the same size`, async () => {
    for (let i = 0; i < 5; i++) await probeAfter(benignOf('Authorization')); // warm-up
    for (const hd of HEADERS.filter((x) => x.prefix === 'Digest ')) {
      const m = await alternate(message(hd.name, hd.prefix + ';'.repeat(N), hd.response ?? false, ua.localPort), benignOf(hd.name), 9);
      assert.ok(m.hostile <= 5 * m.benign, `${hd.name}: ${m.hostile.toFixed(2)} ms against ${m.benign.toFixed(2)} ms benign (ratio ${(m.hostile / m.benign).toFixed(1)})`);
    }
  });

  test(`${HEADERS.length * FILLS.length} long repetitive headers of every kind: none costs many times a benign one`, async () => {
    const base: number[] = [];
    const worst: { what: string; ms: number }[] = [];
    for (const hd of HEADERS) {
      for (const fill of FILLS) {
        const value = hd.prefix + fill.repeat(Math.ceil(N / fill.length)).slice(0, N);
        const m = await alternate(message(hd.name, value, hd.response ?? false, ua.localPort), benignOf(hd.name), 5);
        base.push(m.benign);
        worst.push({ what: `${hd.name}: ${JSON.stringify(hd.prefix)} + ${JSON.stringify(fill)} × ${N}`, ms: m.hostile });
      }
    }
    const b = median(base);
    worst.sort((x, y) => y.ms - x.ms);
    const top = worst[0]!;
    if (process.env.HERALD_TEST_VERBOSE) console.log(b, worst.slice(0, 12));
    // Quadratic parsing made these hundreds to thousands of times the benign figure; noise on a shared
    // 2-core machine can make a linear one tens of times it (a GC pause, another process).
    assert.ok(top.ms <= 100 * b, `${top.what}: ${top.ms.toFixed(1)} ms against ${b.toFixed(1)} ms for a benign header (ratio ${(top.ms / b).toFixed(1)})`);
  });
});
