// RFC 3263 resolution over a real DNS server (dnsmasq on loopback, a test zone, never the machine's
// resolver): the RFC §4.1 NAPTR example, SRV without NAPTR, A/AAAA fall-back, the URI's own choices.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SipResolver } from '../../src/sip/resolver.js';
import { haveDnsmasq, TestDns } from '../support/dns.js';

describe('RFC 3263 through dnsmasq', { skip: !haveDnsmasq && 'dnsmasq not installed (scripts/install-peers.sh)' }, () => {
  let dns: TestDns;
  before(async () => {
    dns = await TestDns.start(['example.test', 'srvonly.test', 'plain.test'], {
      // RFC 3263 §4.1's example: TLS over TCP, then TCP, then UDP.
      naptr: [
        ['example.test', 50, 50, 's', 'SIPS+D2T', '', '_sips._tcp.example.test'],
        ['example.test', 90, 50, 's', 'SIP+D2T', '', '_sip._tcp.example.test'],
        ['example.test', 100, 50, 's', 'SIP+D2U', '', '_sip._udp.example.test'],
      ],
      srv: [
        ['_sips._tcp.example.test', 'tls.example.test', 5061, 0, 0],
        ['_sip._tcp.example.test', 'b.example.test', 5070, 20, 0],
        ['_sip._tcp.example.test', 'a.example.test', 5060, 10, 0],
        ['_sip._udp.example.test', 'a.example.test', 5060, 10, 0],
        ['_sip._tcp.srvonly.test', 'pbx.srvonly.test', 5090, 0, 0],
      ],
      a: [
        ['tls.example.test', '127.0.0.5'],
        ['a.example.test', '127.0.0.1'],
        ['b.example.test', '127.0.0.2'],
        ['pbx.srvonly.test', '127.0.0.9'],
        ['plain.test', '127.0.0.7'],
      ],
    });
  });
  after(async () => {
    await dns.stop();
  });
  const show = (t: { protocol: string; address: string; port: number; serverName?: string }[]) => t.map((x) => `${x.protocol} ${x.address}:${x.port}${x.serverName ? ` ${x.serverName}` : ''}`);

  test('NAPTR → SRV → A in the RFC example order; TLS verifies the domain, not the SRV target', async () => {
    const r = new SipResolver({ servers: [dns.server] });
    assert.deepEqual(show(await r.resolve('sip:bob@example.test')), ['TLS 127.0.0.5:5061 example.test', 'TCP 127.0.0.1:5060', 'TCP 127.0.0.2:5070', 'UDP 127.0.0.1:5060']);
  });

  test('a SIPS URI uses only SIPS+D2T; a client without TLS skips it', async () => {
    assert.deepEqual(show(await new SipResolver({ servers: [dns.server] }).resolve('sips:bob@example.test')), ['TLS 127.0.0.5:5061 example.test']);
    assert.deepEqual(show(await new SipResolver({ servers: [dns.server], transports: ['UDP', 'TCP'] }).resolve('sip:bob@example.test')), ['TCP 127.0.0.1:5060', 'TCP 127.0.0.2:5070', 'UDP 127.0.0.1:5060']);
  });

  test('transport=udp in the URI: the SRV of that transport only, no NAPTR', async () => {
    assert.deepEqual(show(await new SipResolver({ servers: [dns.server] }).resolve('sip:bob@example.test;transport=udp')), ['UDP 127.0.0.1:5060']);
  });

  test('no NAPTR: the SRV records that exist; none: A with the default port; an explicit port: A only', async () => {
    const r = new SipResolver({ servers: [dns.server] });
    assert.deepEqual(show(await r.resolve('sip:x@srvonly.test')), ['TCP 127.0.0.9:5090']);
    assert.deepEqual(show(await r.resolve('sip:x@plain.test')), ['UDP 127.0.0.7:5060']);
    assert.deepEqual(show(await r.resolve('sip:x@plain.test:5077;transport=tcp')), ['TCP 127.0.0.7:5077']);
    assert.deepEqual(await r.resolve('sip:x@nothing.plain.test'), []);
  });
});
