// The typed configuration. Every key in config.toml is described here with its default; `.strict()`
// makes an unknown key an error that names it (the brief: a misspelt key must stop the start).
import { z } from 'zod';
// The gateways' sections are theirs (gateways/*/config.ts, zod only): like src/server.ts, the
// configuration schema composes every part, and it loads no gateway code.
import { XmppGatewayConfigSchema } from '../../gateways/xmpp/config.js';
import { SipGatewayConfigSchema } from '../../gateways/sip/config.js';
import type { ListenAddress } from '../sip/transport.js';

const listenRe = /^(udp|tcp|tls|ws|wss):([^\s]+):(\d{1,5})$/;

export const ListenSchema = z.string().regex(listenRe, 'expected "<udp|tcp|tls|ws|wss>:<address>:<port>"');

const expires = (dflt: number) => z.number().int().min(0).max(2 ** 31 - 1).default(dflt);

export const ConfigSchema = z
  .object({
    sip: z
      .object({
        listen: z.array(ListenSchema).min(1).default(['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060']),
        tls_cert: z.string().default(''),
        tls_key: z.string().default(''),
        tls_ca: z.string().default(''),
        domains: z.array(z.string().min(1).toLowerCase()).min(1).default(['example.test']),
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
        trusted_peers: z.array(z.string().regex(/^[0-9a-fA-F.:]+(\/\d{1,3})?$/, 'expected an IP address or CIDR block')).default([]),
        trusted_tls_names: z.array(z.string().min(1).toLowerCase()).default([]),
        nonce_lifetime: z.number().int().min(10).max(86400).default(300),
        algorithms: z.array(z.enum(['SHA-256', 'MD5'])).min(1).default(['SHA-256', 'MD5']),
      })
      .strict()
      .prefault({}),
    xcap: z
      .object({
        enabled: z.boolean().default(true),
        listen: z.string().regex(/^[^\s]+:\d{1,5}$/, 'expected "<address>:<port>"').default('127.0.0.1:8080'),
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
    policy: z
      .object({
        default: z.enum(['block', 'confirm', 'polite-block', 'allow']).default('confirm'),
        allow_domains: z.array(z.string().toLowerCase()).default([]),
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
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
        format: z.enum(['json', 'pretty']).default('pretty'),
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
  });

export type Config = z.infer<typeof ConfigSchema>;

export function parseListen(s: string): ListenAddress {
  const m = listenRe.exec(s);
  if (!m) throw new Error(`bad listen address ${s}`);
  return { transport: m[1] as ListenAddress['transport'], address: m[2]!, port: Number(m[3]) };
}
