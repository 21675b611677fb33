// The seams of instant messaging (RFC 3428 page mode): how a MESSAGE is authorized (the recipient's
// IM rules) and how one leaves Herald for another network (the XMPP bridge, RFC 7572). No I/O.

import type { ImHandling } from '../formats/im-rules.js';

export type { ImHandling };

/** The sender as authenticated (RFC 4745 §7.1: rules decide on identities, never on a bare From). */
export interface ImSender {
  /** The address of record; '' for an anonymous sender. */
  uri: string;
  anonymous: boolean;
}

export interface ImAuthorizer {
  /** Whether `recipient` (an AOR of Herald's domains) takes a message from `sender` now. */
  decide(sender: ImSender, recipient: string): Promise<ImHandling>;
}

export const allowAllMessages: ImAuthorizer = { decide: () => Promise.resolve('allow') };

/** One instant message as the bridge hands it over, in either direction. */
export interface InstantMessage {
  /** The sender's address as the receiving side should show it (and reply to). */
  from: string;
  /** The recipient's address on the sending side. */
  to: string;
  /** The text (text/plain; a CPIM wrapper already removed). */
  text: string;
  /** RFC 3428 §9: the MESSAGE's Call-ID, which RFC 7572 §4/§5 maps to and from <thread/>. */
  thread?: string;
  subject?: string;
  /** Content-Language ↔ xml:lang (RFC 7572). */
  lang?: string;
  /** When it was sent, as epoch milliseconds (SIP Date, CPIM DateTime, XEP-0203 delay). */
  sentAt?: number;
}

/** A final answer for a message, in SIP terms. */
export interface ImOutcome {
  status: number;
  reason: string;
}

/** A network reached through a gateway (SIP → elsewhere). */
export interface ImBridge {
  /** Whether the Request-URI names somebody on the other side (including addresses it refuses). */
  handles(uri: string): boolean;
  /** Sends the message on; resolves with what to answer the SIP sender. */
  send(m: InstantMessage): Promise<ImOutcome>;
}
