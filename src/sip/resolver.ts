// RFC 3263 (Locating SIP Servers): a SIP URI to the ordered list of (transport, address, port) a
// client tries, NAPTR → SRV → A/AAAA, with transport selection from the URI and the NAPTR services.
//
// Why not `sip.resolve` (the `sip` package): it skips NAPTR, takes no DNS servers of its own (tests
// would reach the machine's resolver) and flattens the answer so that failover order is lost. Here a
// node:dns Resolver with configurable servers, and the RFC's steps each in one function.
import { Resolver } from 'node:dns/promises';
import net from 'node:net';
import { parseSipUri } from './codec.js';
import type { Flow, Protocol } from './message.js';

/** The transports a URI may resolve to (WS is never dialled out: browsers are behind it). */
export type DialProtocol = Exclude<Protocol, 'WS'>;

/** A target to try, in order (RFC 3263 §4.3): a flow plus the name TLS must verify (RFC 5922 §4). */
export interface ResolvedTarget extends Flow {
  protocol: DialProtocol;
  /** The domain the certificate must name (TLS only): the URI's host, not the SRV target. */
  serverName?: string;
}

export interface ResolverOptions {
  /** DNS servers as "ip" or "ip:port" ("[v6]:port"); empty: the system's. */
  servers?: readonly string[];
  /** Per-query timeout in ms (node:dns retries with doubling up to `tries`). */
  timeoutMs?: number;
  tries?: number;
  /** Transports this client can use, in its own order of preference for SRV without NAPTR. */
  transports?: readonly DialProtocol[];
  /** How long answers are kept (ms); 0: not at all. */
  cacheMs?: number;
  /** For the weighted SRV choice (RFC 2782); tests make it deterministic. */
  random?: () => number;
}

export const DEFAULT_PORT: Record<Protocol, number> = { UDP: 5060, TCP: 5060, TLS: 5061, WS: 80 };

/** RFC 3263 §4.1 / RFC 3261 §26: NAPTR services and SRV prefixes of each transport. */
const NAPTR_SERVICE: Record<string, { protocol: DialProtocol; secure: boolean }> = {
  'SIP+D2U': { protocol: 'UDP', secure: false },
  'SIP+D2T': { protocol: 'TCP', secure: false },
  'SIPS+D2T': { protocol: 'TLS', secure: true },
};
const SRV_PREFIX: Record<DialProtocol, string> = { UDP: '_sip._udp', TCP: '_sip._tcp', TLS: '_sips._tcp' };

export interface Naptr {
  order: number;
  preference: number;
  flags: string;
  service: string;
  regexp: string;
  replacement: string;
}
export interface Srv {
  priority: number;
  weight: number;
  port: number;
  name: string;
}

/** The DNS questions the algorithm asks: node:dns in production, anything in a unit test. */
export interface DnsLookups {
  naptr(name: string): Promise<Naptr[]>;
  srv(name: string): Promise<Srv[]>;
  addresses(name: string): Promise<string[]>;
}

/** The transport the URI itself names (RFC 3263 §4.1 first paragraphs), or undefined: ask NAPTR. */
export function uriTransport(scheme: string, transport: string | null | undefined): DialProtocol | undefined {
  const t = transport?.toLowerCase();
  if (t === 'udp') return scheme === 'sips' ? undefined : 'UDP';
  if (t === 'tcp') return scheme === 'sips' ? 'TLS' : 'TCP'; // sips over TCP means TLS (RFC 3261 §26.2.2)
  if (t === 'tls') return 'TLS';
  return undefined;
}

/**
 * RFC 3263 §4.1: the usable NAPTR records in order (order, then preference), each as the SRV name and
 * the transport it names. Records of services this client lacks, of non-"s" flags, or (for a SIPS
 * URI) of insecure transports are discarded.
 */
export function naptrChoices(records: readonly Naptr[], secure: boolean, transports: readonly DialProtocol[]): { protocol: DialProtocol; srvName: string }[] {
  return records
    .filter((r) => r.flags.toLowerCase() === 's' && r.replacement !== '' && r.replacement !== '.')
    .map((r) => ({ r, s: NAPTR_SERVICE[r.service.toUpperCase()] }))
    .filter((x): x is { r: Naptr; s: { protocol: DialProtocol; secure: boolean } } => !!x.s && transports.includes(x.s.protocol) && (!secure || x.s.secure))
    .sort((a, b) => a.r.order - b.r.order || a.r.preference - b.r.preference)
    .map((x) => ({ protocol: x.s.protocol, srvName: x.r.replacement.replace(/\.$/, '') }));
}

/**
 * RFC 2782: lowest priority first; within one priority a weighted random order (weight 0 entries
 * first in the running sum, so they are chosen rarely but still chosen). A single "." target means
 * the service is decidedly not available there.
 */
export function orderSrv(records: readonly Srv[], random: () => number = Math.random): Srv[] {
  if (records.length === 1 && (records[0]!.name === '' || records[0]!.name === '.')) return [];
  const byPriority = new Map<number, Srv[]>();
  for (const r of records) {
    const list = byPriority.get(r.priority) ?? [];
    list.push(r);
    byPriority.set(r.priority, list);
  }
  const out: Srv[] = [];
  for (const p of [...byPriority.keys()].sort((a, b) => a - b)) {
    const left = [...byPriority.get(p)!].sort((a, b) => a.weight - b.weight);
    while (left.length > 0) {
      const total = left.reduce((s, r) => s + r.weight, 0);
      const pick = random() * (total + 1);
      let sum = 0;
      let i = 0;
      for (; i < left.length - 1; i++) {
        sum += left[i]!.weight;
        if (sum >= pick) break;
      }
      out.push(left.splice(i, 1)[0]!);
    }
  }
  return out;
}

/** The whole of RFC 3263 §4 for one URI, against any DnsLookups: the ordered targets to try. */
export async function locate(uri: string, dns: DnsLookups, transports: readonly DialProtocol[], random?: () => number): Promise<ResolvedTarget[]> {
  const u = parseSipUri(uri);
  if (!u) return [];
  const secure = u.scheme === 'sips';
  // RFC 3263 §4: maddr, when present, is the target instead of the host.
  const target = (u.params['maddr'] || u.host).replace(/^\[|\]$/g, '').toLowerCase();
  const serverName = u.host.replace(/^\[|\]$/g, '');
  const named = uriTransport(u.scheme, u.params['transport']);
  if (u.params['transport'] && !named) return []; // a transport Herald cannot dial (or udp with sips)
  const allowed = transports.filter((t) => !secure || t === 'TLS');
  const withName = (t: Omit<ResolvedTarget, 'serverName'>): ResolvedTarget => (t.protocol === 'TLS' && !net.isIP(serverName) ? { ...t, serverName } : t);

  // §4.1–4.2: a numeric IP, or an explicit port: no NAPTR, no SRV.
  if (net.isIP(target) || u.port !== undefined) {
    const protocol = named ?? (secure ? 'TLS' : 'UDP');
    if (!transports.includes(protocol)) return [];
    const port = u.port ?? DEFAULT_PORT[protocol];
    const addrs = net.isIP(target) ? [target] : await dns.addresses(target);
    return addrs.map((address) => withName({ protocol, address, port }));
  }

  // §4.1: the SRV names to ask, in order: from NAPTR when the URI named no transport, else built.
  let srvNames: { protocol: DialProtocol; srvName: string }[] = [];
  if (!named) srvNames = naptrChoices(await dns.naptr(target), secure, allowed);
  if (srvNames.length === 0) {
    const protos = named ? (allowed.includes(named) ? [named] : []) : allowed;
    srvNames = protos.map((protocol) => ({ protocol, srvName: `${SRV_PREFIX[protocol]}.${target}` }));
  }

  const out: ResolvedTarget[] = [];
  for (const { protocol, srvName } of srvNames) {
    for (const srv of orderSrv(await dns.srv(srvName), random)) {
      for (const address of await dns.addresses(srv.name.replace(/\.$/, ''))) out.push(withName({ protocol, address, port: srv.port }));
    }
  }
  if (out.length > 0) return dedupe(out);

  // §4.2: no SRV records: A/AAAA of the host with the transport's default port. Without NAPTR or a
  // named transport that is UDP for sip and TLS for sips (§4.1).
  const protocol = named ?? (secure ? 'TLS' : 'UDP');
  if (!transports.includes(protocol)) return [];
  return (await dns.addresses(target)).map((address) => withName({ protocol, address, port: DEFAULT_PORT[protocol] }));
}

function dedupe(targets: ResolvedTarget[]): ResolvedTarget[] {
  const seen = new Set<string>();
  return targets.filter((t) => {
    const k = `${t.protocol}|${t.address}|${t.port}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Errors that mean "no such record" rather than "could not ask". */
const NO_DATA = new Set(['ENODATA', 'ENOTFOUND', 'ENONAME', 'NXDOMAIN', 'ESERVFAIL', 'EREFUSED', 'ETIMEOUT', 'ECONNREFUSED', 'EBADRESP', 'EFORMERR']);

/** A SIP URI whose host is an IPv4 or bracketed IPv6 literal, without maddr (which names another host). */
const IP_LITERAL_URI = /^sips?:(?:[^@;?>]*@)?(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\])(?::\d{1,5})?(?:[;?>]|$)(?!.*maddr=)/i;

/**
 * The production resolver: node:dns on the configured servers, answers kept for `cacheMs` (node:dns
 * gives no TTL for NAPTR/SRV, so one bound for all), IP-literal targets kept without a lookup.
 */
export class SipResolver implements DnsLookups {
  private readonly dns: Resolver;
  private readonly cache = new Map<string, { at: number; value: Promise<unknown> }>();
  private readonly transports: readonly DialProtocol[];
  private readonly cacheMs: number;
  private static readonly CACHE_MAX = 50_000;

  constructor(private readonly opts: ResolverOptions = {}) {
    this.dns = new Resolver({ timeout: opts.timeoutMs ?? 2000, tries: opts.tries ?? 2 });
    if (opts.servers && opts.servers.length > 0) this.dns.setServers([...opts.servers]);
    this.transports = opts.transports ?? ['UDP', 'TCP', 'TLS'];
    this.cacheMs = opts.cacheMs ?? 30_000;
  }

  /** RFC 3263 §4: the targets for a URI, in the order they are to be tried. */
  resolve(uri: string): Promise<ResolvedTarget[]> {
    // A numeric host asks no DNS, and its answer never changes: nothing to keep (a NOTIFY target is
    // usually a phone's Contact, one per subscription, and a cache entry for each would outweigh it).
    if (IP_LITERAL_URI.test(uri)) return locate(uri, this, this.transports, this.opts.random);
    return this.cached(`uri|${uri}`, () => locate(uri, this, this.transports, this.opts.random));
  }

  /** Whether the targets of `uri` can never change (a numeric host: no DNS is asked, RFC 3263 §4.2). */
  unchanging(uri: string): boolean {
    return IP_LITERAL_URI.test(uri);
  }

  naptr(name: string): Promise<Naptr[]> {
    return this.cached(`naptr|${name}`, () => this.quiet(this.dns.resolveNaptr(name)));
  }

  srv(name: string): Promise<Srv[]> {
    return this.cached(`srv|${name}`, () => this.quiet(this.dns.resolveSrv(name)));
  }

  async addresses(name: string): Promise<string[]> {
    if (net.isIP(name)) return [name];
    if (name === 'localhost') return ['127.0.0.1'];
    return this.cached(`addr|${name}`, async () => {
      const [a, aaaa] = await Promise.all([this.quiet(this.dns.resolve4(name)), this.quiet(this.dns.resolve6(name))]);
      return [...a, ...aaaa];
    });
  }

  private async quiet<T>(p: Promise<T[]>): Promise<T[]> {
    try {
      return await p;
    } catch (e) {
      if (NO_DATA.has((e as NodeJS.ErrnoException).code ?? '')) return [];
      throw e;
    }
  }

  private cached<T>(key: string, ask: () => Promise<T>): Promise<T> {
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && now - hit.at < this.cacheMs) return hit.value as Promise<T>;
    const value = ask();
    if (this.cacheMs > 0) {
      if (this.cache.size >= SipResolver.CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(key, { at: now, value });
      // A failed lookup is not remembered.
      value.catch(() => this.cache.delete(key));
    }
    return value;
  }
}
