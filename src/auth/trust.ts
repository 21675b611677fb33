// Trusted peers by source address: exact IPv4/IPv6 addresses or CIDR blocks ("10.0.0.0/8").
import net from 'node:net';

function v4ToInt(a: string): number {
  return a.split('.').reduce((n, o) => (n << 8) + Number(o), 0) >>> 0;
}

export function isTrustedAddress(address: string, peers: readonly string[]): boolean {
  const addr = address.startsWith('::ffff:') ? address.slice(7) : address;
  for (const p of peers) {
    const [base, bitsText] = p.split('/');
    if (!base) continue;
    if (bitsText === undefined) {
      if (base === addr) return true;
      continue;
    }
    const bits = Number(bitsText);
    if (net.isIPv4(base) && net.isIPv4(addr)) {
      if (bits === 0) return true;
      const mask = bits >= 32 ? 0xffffffff : (~((1 << (32 - bits)) - 1)) >>> 0;
      if ((v4ToInt(base) & mask) === (v4ToInt(addr) & mask)) return true;
    } else if (net.isIPv6(base) && net.isIPv6(addr)) {
      const bl = new net.BlockList();
      bl.addSubnet(base, bits, 'ipv6');
      if (bl.check(addr, 'ipv6')) return true;
    }
  }
  return false;
}
