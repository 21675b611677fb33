// log.sip_trace: every SIP message in and out is logged whole (at info; at trace level without the key).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { pino } from 'pino';
import { validateConfig } from '../../src/config/load.js';
import { startHerald } from '../../src/server.js';
import { tempDir } from '../support/herald.js';
import { TestUA } from '../support/ua.js';

for (const [name, log] of [['log.sip_trace = true at info', { level: 'info', sip_trace: true }], ['log.level = trace', { level: 'trace', sip_trace: false }]] as const) {
  test(`${name}: the OPTIONS and its 200 are in the log, whole`, async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({ write: (c: Buffer, _e, cb) => (lines.push(...c.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)), cb()) });
    const cfg = validateConfig({
      sip: { listen: ['udp:127.0.0.1:0'] },
      store: { url: 'memory://' },
      xcap: { enabled: false },
      admin: { listen: '127.0.0.1:0', token_file: join(tempDir(), 'admin.token') },
      log: { ...log, format: 'json' },
    });
    const h = await startHerald(cfg, { log: pino({ level: log.level }, sink) });
    const ua = await TestUA.open('udp', '127.0.0.1', Number(h.addresses[0]!.split(':').pop()));
    try {
      assert.equal((await ua.request('OPTIONS', 'sip:example.test', { from: 'sip:probe@example.test' })).status, 200);
      const traced = lines.filter((l) => l['sip'] !== undefined);
      const inbound = traced.find((l) => l['sip'] === 'in' && /^OPTIONS sip:example\.test SIP\/2\.0\r\n/.test(String(l['message'])));
      const outbound = traced.find((l) => l['sip'] === 'out' && /^SIP\/2\.0 200 OK\r\n[\s\S]*Call-ID:/i.test(String(l['message'])));
      assert.ok(inbound, 'the request, whole');
      assert.ok(outbound, 'the response, whole');
      assert.equal(inbound['level'], log.sip_trace ? 30 : 10);
      assert.match(String(inbound['peer']), /^UDP:127\.0\.0\.1:\d+$/);
    } finally {
      ua.close();
      await h.stop();
    }
  });
}
