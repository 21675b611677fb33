// The typed configuration. Every key in config.toml is described here with its default; `.strict()`
// makes an unknown key an error that names it (the brief: a misspelt key must stop the start).
import { isIP } from 'node:net';
import { z } from 'zod';
// The gateways' sections are theirs (gateways/*/config.ts, zod only): like src/server.ts, the
// configuration schema composes every part, and it loads no gateway code.
import { XmppGatewayConfigSchema } from '../../gateways/xmpp/config.js';
import { SipGatewayConfigSchema } from '../../gateways/sip/config.js';
import type { ListenAddress } from '../sip/transport.js';

const listenRe = /^(udp|tcp|tls|ws|wss):([^\s]+):(\d{1,5})$/;
const portOf = (s: string): number => Number(s.slice(s.lastIndexOf(':') + 1));
/** A port field must fit 16 bits: UDP would silently wrap 99999 to 34463. */
const portFits = (s: string): boolean => portOf(s) <= 65535;
const PORT_MESSAGE = 'port above 65535';

export const ListenSchema = z.string().regex(listenRe, 'expected "<udp|tcp|tls|ws|wss>:<address>:<port>"').refine(portFits, PORT_MESSAGE);

/** "<address>:<port>" of an HTTP listener (XCAP, admin). */
const HttpListenSchema = z.string().regex(/^[^\s]+:\d{1,5}$/, 'expected "<address>:<port>"').refine(portFits, PORT_MESSAGE);

/** RFC 1123 host names (labels of letters, digits and hyphens) or an IP literal. */
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
export const isHostName = (s: string): boolean => HOST_NAME.test(s) || isIP(s.replace(/^\[|\]$/g, '')) !== 0;
const DomainSchema = z.string().min(1).toLowerCase().refine(isHostName, 'not a host name');

/** An IP address or a CIDR block whose prefix fits the address family (10.0.0.0/99 does not). */
export function isAddressOrCidr(s: string): boolean {
  const slash = s.indexOf('/');
  const family = isIP(slash < 0 ? s : s.slice(0, slash));
  if (family === 0) return false;
  if (slash < 0) return true;
  const bits = s.slice(slash + 1);
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
/** "auto": pretty on a terminal, JSON otherwise (a service manager, a pipe, a log shipper). */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;

const expires = (dflt: number) => z.number().int().min(0).max(2 ** 31 - 1).default(dflt);

export const ConfigSchema = z
  .object({
    sip: z
      .object({
        listen: z.array(ListenSchema).min(1).default(['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060']),
        tls_cert: z.string().default(''),
        tls_key: z.string().default(''),
        tls_ca: z.string().default(''),
        domains: z.array(DomainSchema).min(1).default(['example.test']),
        max_message_bytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(65535),
        public_host: z.string().default(''),
        dns_servers: z.array(z.string().regex(/^(\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?|[0-9a-fA-F:]+|\[[0-9a-fA-F:]+\]:\d{1,5})$/, 'expected "<ip>" or "<ip>:<port>"')).default([]),
        dns_timeout: z.number().int().min(100).max(30000).default(2000),
      })
      .strict()
      .prefault({}),
    presence: z
      .object({
        subscribe_min_expires: expires(60),
        subscribe_default_expires: expires(3600),
        subscribe_max_expires: expires(86400),
        publish_min_expires: expires(60),
        publish_default_expires: expires(3600),
        publish_max_expires: expires(86400),
        unknown_presentity: z.enum(['closed', '480']).default('closed'),
        max_document_bytes: z.number().int().min(256).max(1024 * 1024).default(32768),
        max_xml_depth: z.number().int().min(4).max(256).default(32),
        winfo_history: z.number().int().min(0).max(30 * 86400).default(3600),
      })
      .strict()
      .prefault({}),
    auth: z
      .object({
        enabled: z.boolean().default(true),
        trusted_peers: z.array(z.string().refine(isAddressOrCidr, 'expected an IP address or CIDR block (prefix at most /32, /128 for IPv6)')).default([]),
        trusted_tls_names: z.array(z.string().min(1).toLowerCase()).default([]),
        nonce_lifetime: z.number().int().min(10).max(86400).default(300),
        algorithms: z.array(z.enum(['SHA-256', 'MD5'])).min(1).default(['MD5', 'SHA-256']),
        challenge: z.enum(['first', 'each']).default('first'),
        replay_nonces: z.number().int().min(100).max(10_000_000).default(100_000),
        replay_nonces_per_identity: z.number().int().min(1).max(10_000).default(32),
        throttle_source_failures: z.number().int().min(1).max(1_000_000).default(20),
        throttle_identity_failures: z.number().int().min(1).max(1_000_000).default(50),
        throttle_window: z.number().int().min(1).max(86400).default(60),
        throttle_lockout: z.number().int().min(1).max(86400).default(60),
      })
      .strict()
      .prefault({}),
    xcap: z
      .object({
        enabled: z.boolean().default(true),
        listen: HttpListenSchema.default('127.0.0.1:8080'),
        root: z.string().regex(/^\/[A-Za-z0-9._~/-]*[A-Za-z0-9._~-]$/, 'expected a path like /xcap-root').default('/xcap-root'),
        max_document_bytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(262144),
        admins: z.array(z.string()).default([]),
        external_url: z.string().regex(/^(https?:\/\/.+)?$/, 'expected an http(s) URL or ""').default(''),
        external_username: z.string().default(''),
        external_password: z.string().default(''),
        poll_interval: z.number().int().min(1).max(86400).default(30),
        timeout: z.number().int().min(1).max(300).default(5),
      })
      .strict()
      .prefault({}),
    rls: z
      .object({
        min_notify_interval: z.number().int().min(0).max(3_600_000).default(1000),
        max_notify_bytes: z.number().int().min(2048).max(16 * 1024 * 1024).default(60000),
        max_members: z.number().int().min(1).max(100000).default(10000),
        nested_lists: z.boolean().default(true),
        flatten_services: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        max_event_loop_delay: z.number().int().min(0).max(60_000).default(200),
        max_pending_requests: z.number().int().min(1).max(1_000_000).default(2000),
        retry_after: z.number().int().min(1).max(3600).default(5),
        max_subscriptions_per_source: z.number().int().min(1).max(10_000_000).default(20_000),
        max_publications_per_presentity: z.number().int().min(1).max(100_000).default(32),
        max_publications_per_source: z.number().int().min(1).max(10_000_000).default(5000),
        max_connections: z.number().int().min(1).max(1_000_000).default(4096),
        connection_idle_timeout: z.number().int().min(1).max(86400).default(900),
        max_retained_response_bytes: z.number().int().min(0).max(16 * 1024 * 1024).default(16384),
        max_retained_bytes: z.number().int().min(0).max(4 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
        max_free_heap_bytes: z.number().int().min(0).max(1024 * 1024 * 1024 * 1024).default(8 * 1024 * 1024),
      })
      .strict()
      .prefault({}),
    policy: z
      .object({
        default: z.enum(['block', 'confirm', 'polite-block', 'allow']).default('confirm'),
        allow_domains: z.array(DomainSchema).default([]),
      })
      .strict()
      .prefault({}),
    im: z
      .object({
        enabled: z.boolean().default(true),
        route: z.string().regex(/^(sips?:[^\s]+)?$/i, 'expected a sip: or sips: URI or ""').default(''),
        default: z.enum(['block', 'polite-block', 'allow']).default('allow'),
        max_body_bytes: z.number().int().min(64).max(1024 * 1024).default(8192),
        rate: z.number().min(0.01).max(10000).default(2),
        burst: z.number().int().min(1).max(100000).default(20),
        timeout: z.number().min(0.5).max(31).default(30),
        lookup_wait: z.number().min(0).max(30).default(2),
        linger: z.number().int().min(0).max(86400).default(600),
      })
      .strict()
      .prefault({}),
    gateway: z
      .object({
        sip: SipGatewayConfigSchema.prefault({}),
        xmpp: XmppGatewayConfigSchema.prefault({}),
      })
      .strict()
      .prefault({}),
    store: z
      .object({
        url: z
          .string()
          .regex(/^(sqlite:\/\/.+|redis:\/\/.+|rediss:\/\/.+|memory:\/\/)$/, 'expected sqlite://PATH, redis://HOST:PORT or memory://')
          .default('sqlite://data/herald.sqlite'),
      })
      .strict()
      .prefault({}),
    // Several nodes on one Redis (docs/cluster.md). `redis` is the one key that switches to the cluster.
    cluster: z
      .object({
        redis: z.string().regex(/^(rediss?:\/\/.+)?$/, 'expected redis://HOST:PORT, rediss://HOST:PORT or ""').default(''),
        node_id: z.string().regex(/^([A-Za-z0-9._-]{1,64})?$/, 'expected letters, digits, ".", "_" or "-" (at most 64) or ""').default(''),
        lease: z.number().int().min(2).max(3600).default(10),
      })
      .strict()
      .prefault({}),
    admin: z
      .object({
        enabled: z.boolean().default(true),
        listen: HttpListenSchema.default('127.0.0.1:8090'),
        admins: z.array(z.string()).default([]),
        token_file: z.string().default('data/admin.token'),
        metrics_public: z.boolean().default(true),
        page_size: z.number().int().min(1).max(10000).default(100),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(LOG_LEVELS).default('info'),
        format: z.enum(LOG_FORMATS).default('auto'),
        sip_trace: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    for (const kind of ['subscribe', 'publish'] as const) {
      const min = c.presence[`${kind}_min_expires`];
      const dflt = c.presence[`${kind}_default_expires`];
      const max = c.presence[`${kind}_max_expires`];
      if (!(min <= dflt && dflt <= max)) {
        ctx.addIssue({
          code: 'custom',
          path: ['presence', `${kind}_default_expires`],
          message: `must lie between ${kind}_min_expires (${min}) and ${kind}_max_expires (${max})`,
        });
      }
    }
    const needsTls = c.sip.listen.some((l) => l.startsWith('tls:') || l.startsWith('wss:'));
    if (c.auth.trusted_tls_names.length > 0 && !c.sip.tls_ca) {
      ctx.addIssue({ code: 'custom', path: ['auth', 'trusted_tls_names'], message: 'trusting peers by TLS name needs sip.tls_ca to verify their certificates' });
    }
    if (needsTls && (!c.sip.tls_cert || !c.sip.tls_key)) {
      ctx.addIssue({ code: 'custom', path: ['sip', 'tls_cert'], message: 'a tls or wss listen address needs tls_cert and tls_key' });
    }
    // Every node of a cluster puts one address in Contact and Via, so in-dialog requests may land on any
    // node behind the load balancer (docs/cluster.md).
    if (c.cluster.redis && !c.sip.public_host) {
      ctx.addIssue({ code: 'custom', path: ['sip', 'public_host'], message: 'must be set when cluster.redis is set (the address every node puts in Contact and Via)' });
    }
    // The admin listener has a port of its own: sharing one with SIP or XCAP could only fail to bind.
    if (c.admin.enabled) {
      const adminPort = portOf(c.admin.listen);
      const taken = [...c.sip.listen.map(portOf), ...(c.xcap.enabled ? [portOf(c.xcap.listen)] : [])];
      if (adminPort !== 0 && taken.includes(adminPort)) {
        ctx.addIssue({ code: 'custom', path: ['admin', 'listen'], message: `port ${adminPort} is already a SIP or XCAP port` });
      }
    }
  });

export type Config = z.infer<typeof ConfigSchema>;

export function parseListen(s: string): ListenAddress {
  const m = listenRe.exec(s);
  if (!m) throw new Error(`bad listen address ${s}`);
  return { transport: m[1] as ListenAddress['transport'], address: m[2]!, port: Number(m[3]) };
}
