// A real DNS server for a test zone: Debian's dnsmasq on 127.0.0.1 and a free port, with the NAPTR,
// SRV and A records a test gives, no upstream (never the machine's resolver). Started and stopped by
// pid (scripts/install-peers.sh installs dnsmasq-base).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import dgram from 'node:dgram';
import { freePort } from './process.js';

export const DNSMASQ = '/usr/sbin/dnsmasq';
export const haveDnsmasq = existsSync(DNSMASQ);

export interface ZoneRecords {
  /** [name, order, preference, flags, service, regexp, replacement] */
  naptr?: [string, number, number, string, string, string, string][];
  /** [name (_sip._udp.domain), target, port, priority, weight] */
  srv?: [string, string, number, number, number][];
  /** [name, address] */
  a?: [string, string][];
}

export class TestDns {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly output: () => string,
  ) {}

  /** "127.0.0.1:port", for sip.dns_servers or ResolverOptions.servers. */
  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts dnsmasq authoritative-ish for the domains given (--local: never forwarded). */
  static async start(domains: readonly string[], z: ZoneRecords): Promise<TestDns> {
    const port = await freePort();
    const args = [
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      '--no-poll',
      '--bind-interfaces',
      '--listen-address=127.0.0.1',
      `--port=${port}`,
      '--pid-file=',
      '--user=root',
      '--cache-size=0',
      '--log-facility=-',
      ...domains.map((d) => `--local=/${d}/`),
      ...(z.naptr ?? []).map((r) => `--naptr-record=${r.join(',')}`),
      ...(z.srv ?? []).map((r) => `--srv-host=${r.join(',')}`),
      ...(z.a ?? []).map((r) => `--host-record=${r.join(',')}`),
    ];
    const child = spawn(DNSMASQ, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const dns = new TestDns(child, port, () => out);
    // Ready when it answers a query (bounded: 5 s).
    for (let i = 0; i < 100; i++) {
      if (child.exitCode !== null) throw new Error(`dnsmasq exited: ${out}`);
      if (await answers(port)) return dns;
      await new Promise((r) => setTimeout(r, 50));
    }
    await dns.stop();
    throw new Error(`dnsmasq did not answer: ${out}`);
  }

  get log(): string {
    return this.output();
  }

  stop(): Promise<void> {
    const c = this.child;
    if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => c.kill('SIGKILL'), 3000);
      c.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      c.kill('SIGTERM');
    });
  }
}

/** One DNS query (A for "ready.invalid") over UDP: any answer means the server is up. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const q = Buffer.from('abcd01000001000000000000' + '057265616479' + '07696e76616c6964' + '00' + '0001' + '0001', 'hex');
    const t = setTimeout(() => {
      s.close();
      resolve(false);
    }, 200);
    s.once('message', () => {
      clearTimeout(t);
      s.close();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      s.close();
      resolve(false);
    });
    s.send(q, port, '127.0.0.1');
  });
}
