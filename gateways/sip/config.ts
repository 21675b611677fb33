// [gateway.sip]: the presence B2BUA to remote SIP domains, and [gateway.sip.reg]: registration state
// (RFC 3680) from the operator's registrar. Every key has a default; `.strict()` refuses unknown keys.
import { z } from 'zod';

const sipUri = z.string().regex(/^sips?:[^\s]+$/i, 'expected a sip: or sips: URI');
const sipUriOrEmpty = z.string().regex(/^(sips?:[^\s]+)?$/i, 'expected a sip: or sips: URI or ""');

export const SipPeerSchema = z
  .object({
    /** The remote domain, e.g. "remote.test" (the host part of its users' addresses). */
    domain: z.string().min(1).toLowerCase(),
    /**
     * The domain trusts Herald's domain (a federation agreement: it applies its rules to Herald as a
     * whole): one shared upstream subscription per remote user, From = `identity`, fanned out to
     * every local watcher. false: one upstream subscription per local watcher, From = the watcher.
     */
    trusts_us: z.boolean().default(false),
    /** Send every request for this domain through this proxy (";transport=tcp", "sips:" for TLS). "": RFC 3263. */
    outbound_proxy: sipUriOrEmpty.default(''),
    /** Digest credentials for this domain's 401/407 challenges. "": none (the challenge ends it). */
    username: z.string().default(''),
    password: z.string().default(''),
  })
  .strict();

export const RegSourceConfigSchema = z
  .object({
    /** Subscribe to the `reg` event (RFC 3680) for local users at the operator's registrar. */
    enabled: z.boolean().default(false),
    /** Where the reg SUBSCRIBEs go (an outbound proxy for them), e.g. "sip:127.0.0.1:5070". */
    registrar: sipUriOrEmpty.default(''),
    /** Local addresses of record always watched, e.g. ["sip:alice@example.test"]. */
    aors: z.array(sipUri).default([]),
    /** Also watch a local user's registration while somebody watches that user's presence. */
    on_demand: z.boolean().default(true),
    /** Requested subscription duration (seconds). */
    expires: z.number().int().min(60).max(86400).default(3600),
  })
  .strict();

export const SipGatewayConfigSchema = z
  .object({
    /** Route resources outside Herald's own domains to remote SIP domains. false: they get 404. */
    enabled: z.boolean().default(false),
    /** "any": bridge every remote domain; "peers": only the domains listed in `peers`, others 403. */
    policy: z.enum(['any', 'peers']).default('peers'),
    /** Per-domain settings (and, with policy "peers", the allowed list). */
    peers: z.array(SipPeerSchema).default([]),
    /** The gateway's own address of record: the From of shared subscriptions (RFC 4662 §7.1). */
    identity: sipUri.default('sip:presence-gateway@example.test'),
    /** Requested upstream subscription duration (seconds); a 423 raises it to Min-Expires. */
    expires: z.number().int().min(60).max(86400).default(3600),
    /** Refresh an upstream subscription when this fraction of the granted time has passed. */
    refresh_fraction: z.number().min(0.1).max(0.95).default(0.8),
    /** Backoff for re-subscribing after 481, timeouts or 5xx (seconds): doubling from min to max. */
    min_retry: z.number().min(0.01).max(3600).default(5),
    max_retry: z.number().min(0.01).max(86400).default(300),
    /**
     * Seconds a dialog restored after a restart waits for a local watcher to claim it before it is
     * unsubscribed (the notifier restores its subscriptions, and so its watches, just after).
     */
    restore_grace: z.number().min(0).max(3600).default(30),
    reg: RegSourceConfigSchema.prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.min_retry > c.max_retry) ctx.addIssue({ code: 'custom', path: ['min_retry'], message: 'must not exceed max_retry' });
    if (c.reg.enabled && !c.reg.registrar) ctx.addIssue({ code: 'custom', path: ['reg', 'registrar'], message: 'reg.enabled needs a registrar URI' });
    const seen = new Set<string>();
    for (const [i, p] of c.peers.entries()) {
      if (seen.has(p.domain)) ctx.addIssue({ code: 'custom', path: ['peers', i, 'domain'], message: `duplicate peer domain ${p.domain}` });
      seen.add(p.domain);
    }
  });

export type SipGatewayConfig = z.infer<typeof SipGatewayConfigSchema>;
export type SipPeerConfig = z.infer<typeof SipPeerSchema>;
export type RegSourceConfig = z.infer<typeof RegSourceConfigSchema>;
