// RFC 3263 §4 step by step against a table of records (the RFC's own NAPTR example), no network.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { locate, naptrChoices, orderSrv, uriTransport, type DnsLookups, type Naptr, type Srv } from '../../src/sip/resolver.js';

/** RFC 3263 §4.1: "the server supports TLS over TCP, TCP, and UDP, in that order of preference". */
const RFC3263_NAPTR: Naptr[] = [
  { order: 90, preference: 50, flags: 's', service: 'SIP+D2T', regexp: '', replacement: '_sip._tcp.example.com' },
  { order: 100, preference: 50, flags: 's', service: 'SIP+D2U', regexp: '', replacement: '_sip._udp.example.com.' },
  { order: 50, preference: 50, flags: 's', service: 'SIPS+D2T', regexp: '', replacement: '_sips._tcp.example.com.' },
];

function table(t: { naptr?: Record<string, Naptr[]>; srv?: Record<string, Srv[]>; a?: Record<string, string[]> }): DnsLookups & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    naptr: (n) => (asked.push(`NAPTR ${n}`), Promise.resolve(t.naptr?.[n] ?? [])),
    srv: (n) => (asked.push(`SRV ${n}`), Promise.resolve(t.srv?.[n] ?? [])),
    addresses: (n) => (asked.push(`A ${n}`), Promise.resolve(t.a?.[n] ?? [])),
  };
}

const ALL = ['UDP', 'TCP', 'TLS'] as const;
const srv = (name: string, port: number, priority = 0, weight = 0): Srv => ({ name, port, priority, weight });

describe('RFC 3263 §4.1 transport selection', () => {
  test('the RFC example NAPTR set orders TLS, TCP, UDP; a SIPS URI keeps only SIPS+D2T', () => {
    assert.deepEqual(
      naptrChoices(RFC3263_NAPTR, false, ALL).map((c) => `${c.protocol} ${c.srvName}`),
      ['TLS _sips._tcp.example.com', 'TCP _sip._tcp.example.com', 'UDP _sip._udp.example.com'],
    );
    assert.deepEqual(naptrChoices(RFC3263_NAPTR, true, ALL).map((c) => c.protocol), ['TLS']);
    // A client without TLS discards the services it lacks.
    assert.deepEqual(naptrChoices(RFC3263_NAPTR, false, ['UDP', 'TCP']).map((c) => c.protocol), ['TCP', 'UDP']);
  });

  test('unknown services and non-"s" flags are discarded', () => {
    const odd: Naptr[] = [
      { order: 1, preference: 1, flags: 's', service: 'SIP+D2S', regexp: '', replacement: '_sip._sctp.example.com' },
      { order: 2, preference: 1, flags: 'a', service: 'SIP+D2U', regexp: '', replacement: 'host.example.com' },
      { order: 3, preference: 1, flags: 'S', service: 'sip+d2u', regexp: '', replacement: '_sip._udp.example.com' },
    ];
    assert.deepEqual(naptrChoices(odd, false, ALL), [{ protocol: 'UDP', srvName: '_sip._udp.example.com' }]);
  });

  test('a transport parameter decides without NAPTR; sips with transport=tcp is TLS; sips+udp is not allowed', () => {
    assert.equal(uriTransport('sip', 'tcp'), 'TCP');
    assert.equal(uriTransport('sips', 'tcp'), 'TLS');
    assert.equal(uriTransport('sip', 'udp'), 'UDP');
    assert.equal(uriTransport('sips', 'udp'), undefined);
    assert.equal(uriTransport('sip', undefined), undefined);
  });
});

describe('RFC 2782 SRV order', () => {
  test('lowest priority first; weights order within a priority', () => {
    const recs = [srv('b', 2, 20), srv('a1', 1, 10, 0), srv('a2', 1, 10, 100)];
    // random() = 0.5 → pick at 50.5 of 101: the weight-100 record comes first, then the weight-0 one.
    assert.deepEqual(orderSrv(recs, () => 0.5).map((r) => r.name), ['a2', 'a1', 'b']);
    // random() = 0: the weight-0 record is first in the running sum and is chosen.
    assert.deepEqual(orderSrv(recs, () => 0).map((r) => r.name), ['a1', 'a2', 'b']);
  });
  test('a lone "." target means no service', () => {
    assert.deepEqual(orderSrv([srv('.', 0)]), []);
  });
});

describe('RFC 3263 §4 end to end on a record table', () => {
  const zone = {
    naptr: { 'example.com': RFC3263_NAPTR },
    srv: {
      '_sips._tcp.example.com': [srv('tls.example.com', 5061)],
      '_sip._tcp.example.com': [srv('b.example.com', 5070, 20), srv('a.example.com', 5060, 10)],
      '_sip._udp.example.com': [srv('a.example.com', 5060, 10)],
      '_sip._udp.nonaptr.example': [srv('u.nonaptr.example', 5080)],
    },
    a: { 'tls.example.com': ['192.0.2.5'], 'a.example.com': ['192.0.2.1'], 'b.example.com': ['192.0.2.2', '2001:db8::2'], 'u.nonaptr.example': ['192.0.2.8'], 'plain.example': ['192.0.2.9'] },
  };

  test('NAPTR → SRV → A/AAAA gives every target in failover order, TLS naming the domain', async () => {
    const got = await locate('sip:bob@example.com', table(zone), ALL);
    assert.deepEqual(
      got.map((t) => `${t.protocol} ${t.address}:${t.port}${t.serverName ? ` ${t.serverName}` : ''}`),
      ['TLS 192.0.2.5:5061 example.com', 'TCP 192.0.2.1:5060', 'TCP 192.0.2.2:5070', 'TCP 2001:db8::2:5070', 'UDP 192.0.2.1:5060'],
    );
  });

  test('no NAPTR: SRV for each transport the client has, then A with the default port when there is none', async () => {
    const t = table(zone);
    assert.deepEqual((await locate('sip:x@nonaptr.example', t, ALL)).map((x) => `${x.protocol} ${x.address}:${x.port}`), ['UDP 192.0.2.8:5080']);
    assert.deepEqual(t.asked, ['NAPTR nonaptr.example', 'SRV _sip._udp.nonaptr.example', 'A u.nonaptr.example', 'SRV _sip._tcp.nonaptr.example', 'SRV _sips._tcp.nonaptr.example']);
    assert.deepEqual((await locate('sip:x@plain.example', table(zone), ALL)).map((x) => `${x.protocol} ${x.address}:${x.port}`), ['UDP 192.0.2.9:5060']);
    assert.deepEqual((await locate('sips:x@plain.example', table(zone), ALL)).map((x) => `${x.protocol} ${x.address}:${x.port}`), ['TLS 192.0.2.9:5061']);
  });

  test('an explicit port or an IP literal: no NAPTR, no SRV (§4.2)', async () => {
    const t = table(zone);
    assert.deepEqual((await locate('sip:x@plain.example:5099;transport=tcp', t, ALL)).map((x) => `${x.protocol} ${x.address}:${x.port}`), ['TCP 192.0.2.9:5099']);
    assert.deepEqual(t.asked, ['A plain.example']);
    assert.deepEqual(await locate('sip:x@192.0.2.44', table(zone), ALL), [{ protocol: 'UDP', address: '192.0.2.44', port: 5060 }]);
    assert.deepEqual(await locate('sips:x@192.0.2.44', table(zone), ALL), [{ protocol: 'TLS', address: '192.0.2.44', port: 5061 }]);
  });

  test('transport=tcp skips NAPTR and asks the SRV of that transport only; maddr replaces the host', async () => {
    const t = table(zone);
    const got = await locate('sip:bob@example.com;transport=tcp', t, ALL);
    assert.deepEqual(got.map((x) => x.port), [5060, 5070, 5070]);
    assert.equal(t.asked.includes('NAPTR example.com'), false);
    assert.deepEqual(await locate('sip:bob@example.com;maddr=192.0.2.77', table(zone), ALL), [{ protocol: 'UDP', address: '192.0.2.77', port: 5060 }]);
  });

  test('a transport the client lacks yields nothing rather than another transport', async () => {
    assert.deepEqual(await locate('sips:bob@example.com', table(zone), ['UDP', 'TCP']), []);
    assert.deepEqual(await locate('sip:bob@example.com;transport=sctp', table(zone), ALL), []);
  });
});
