// UDP sockets for the bench's load generator (and tests that need many dialogs): bound on loopback,
// large buffers where the system allows, and connected to the server, so sends skip the address
// lookup and only the server's datagrams come in.
import dgram from 'node:dgram';

export async function openConnectedSockets(host: string, port: number, count: number): Promise<{ sockets: dgram.Socket[]; sentBy: string[] }> {
  const sockets: dgram.Socket[] = [];
  const sentBy: string[] = [];
  for (let i = 0; i < count; i++) {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(0, '127.0.0.1', () => {
        s.off('error', reject);
        resolve();
      });
    });
    try {
      s.setRecvBufferSize(4 * 1024 * 1024);
      s.setSendBufferSize(4 * 1024 * 1024);
    } catch {
      // Capped by net.core.rmem_max / wmem_max: the default is what we get.
    }
    await new Promise<void>((resolve) => s.connect(port, host, () => resolve()));
    sockets.push(s);
    sentBy.push(`127.0.0.1:${s.address().port}`);
  }
  return { sockets, sentBy };
}
