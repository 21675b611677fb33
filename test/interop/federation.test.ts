// The other direction of federation (issue 5): a remote domain's watcher reaches Herald's PA through its
// own proxy, which Record-Routes; the proxy (127.0.0.1) is a trusted peer, so its From is believed.
// Over TCP and UDP with sipp; the NOTIFYs must follow the route set to an otherwise unreachable Contact.
import { test } from 'node:test';
import { assertSippOk, requireSipp, runSipp, startHerald } from './peers.js';

for (const transport of ['tcp', 'udp'] as const) {
  test(`a watcher of remote.test through its record-routing proxy over ${transport.toUpperCase()}: 200 echoes Record-Route, NOTIFYs carry Route`, { timeout: 60_000 }, async (t) => {
    if (!requireSipp(t)) return;
    const herald = await startHerald(t);
    assertSippOk(await runSipp('publish-once.xml', { herald, keys: { presentity: 'alice', note: 'federated' } }), herald);
    assertSippOk(await runSipp('federated-subscribe.xml', { herald, transport, keys: { presentity: 'alice', watcher: 'carol' } }), herald);
  });
}
