// [gateway.xmpp]: the XMPP gateway (XEP-0114 component, RFC 7247/8048). Every key has a default;
// `.strict()` refuses unknown keys. Zod only: src/config/schema.ts reads it without loading xmpp.js.
import { z } from 'zod';

const domain = z.string().min(1).toLowerCase().regex(/^[a-z0-9.-]+$/, 'expected a domain name');

export const XmppGatewayConfigSchema = z
  .object({
    // Whether the gateway runs at all.
    enabled: z.boolean().default(false),
    // The XMPP server's component port (XEP-0114), "xmpp://host:port" (Prosody: component_ports, 5347).
    service: z.string().regex(/^xmpp:\/\/[^\s/]+:\d{1,5}$/, 'expected "xmpp://<host>:<port>"').default('xmpp://127.0.0.1:5347'),
    // The component's domain as configured on the XMPP server (`Component "sip.xmpp.test"`): SIP users
    // appear in XMPP as <user>%<sip-domain>@<component_domain>.
    component_domain: domain.default('sip.xmpp.test'),
    // The component secret shared with the XMPP server (XEP-0114 §3 handshake). Never logged.
    secret: z.string().default(''),
    // XMPP domains whose users are bridged (RFC 8048 §8: one trust realm, no open federation). Jabber
    // users of other domains can neither be watched nor watch.
    xmpp_domains: z.array(domain).default([]),
    // The SIP domain under which Jabber users appear: sip:<node><separator><xmpp-domain>@<gateway_domain>.
    // Must not be one of Herald's own [sip] domains.
    gateway_domain: domain.default('xmpp.example.test'),
    // Between node and XMPP domain in the SIP user part ("*" or "%", as Kamailio and OpenSIPS use).
    separator: z.string().min(1).max(3).regex(/^[^@:;\s/]+$/, 'expected a short separator such as "*"').default('*'),
    // Domain pairs: sip:<node>@<sip> is the Jabber user <node>@<xmpp>, e.g. [{ sip = "im.example.test", xmpp = "xmpp.test" }].
    domain_pairs: z.array(z.object({ sip: domain, xmpp: domain }).strict()).default([]),
    // The SIP domain whose users appear in XMPP without "%<domain>" (<user>@<component_domain>); "" for none.
    component_sip_domain: z.string().toLowerCase().default(''),
    // The roster list URI of a SIP user who linked a Jabber account ({user}, {domain} replaced).
    roster_list: z.string().regex(/^[^\s@:]*\{user\}[^\s@:]*@\{domain\}$/, 'expected a pattern like "{user}+roster@{domain}"').default('{user}+roster@{domain}'),
    // The XMPP server's client port for roster mode (accounts may name their own).
    c2s_service: z.string().regex(/^xmpps?:\/\/[^\s/]+:\d{1,5}$/, 'expected "xmpp://<host>:<port>"').default('xmpp://127.0.0.1:5222'),
    // Reconnect backoff of the component connection, seconds: first delay, doubling up to the maximum.
    reconnect_initial: z.number().min(0.05).max(3600).default(1),
    reconnect_max: z.number().min(0.05).max(86400).default(60),
    // Least seconds between two subscribe/probe stanzas for one (SIP watcher, Jabber contact), RFC 8048 §8.
    min_request_interval: z.number().min(0).max(86400).default(30),
  })
  .strict();

export type XmppGatewayConfig = z.infer<typeof XmppGatewayConfigSchema>;
