// What one client family needs in list NOTIFYs beyond RFC 4662, and how Herald tells it is that family.
//
// Herald's list NOTIFYs are plain RFC 2046/2392/4662 for everyone. One widely deployed client needs
// more, and nothing it sends in a SUBSCRIBE announces it except its User-Agent, so that is the key:
//
// Linphone (liblinphone/belle-sip; seen with linphonec 5.1.65, User-Agent "Linphonec/5.1.65", and
// the same SDK in Linphone Desktop/Android/iOS: "Linphone" in the User-Agent), tried on the wire:
//  - it hands a list NOTIFY to its buddy list only when the NOTIFY's Event is spelled `Presence`
//    (a case-sensitive comparison), although it subscribes with `Event: presence`; with `presence`
//    the NOTIFY is answered 200 and ignored;
//  - it finds a resource's part by comparing the RLMI `cid` with a part header named exactly
//    `Content-Id`, value and all: `Content-ID: <cid>` (RFC 2045 §7 spelling and brackets) matches
//    nothing, so every buddy stays unknown.
// (The third thing it trips on, a quoted boundary, it crashes on; that one is fixed for everybody:
// src/formats/multipart.ts writes a token boundary unquoted, which RFC 2045 allows.)
//
// RFC 6665 §8.2.1 compares event types byte by byte, so `Presence` towards a subscriber that wrote
// `presence` is wrong for any other client: that is why this is keyed to Linphone and to list
// NOTIFYs only (its single-buddy subscriptions work with the echoed spelling).

export interface ListNotifyQuirks {
  /** The Event package spelling to put on list NOTIFYs instead of the subscriber's own. */
  eventSpelling?: string;
  /** Part Content-IDs as `Content-Id: cid` (no angle brackets). */
  bareContentId: boolean;
}

const NONE: ListNotifyQuirks = Object.freeze({ bareContentId: false });
const LINPHONE: ListNotifyQuirks = Object.freeze({ eventSpelling: 'Presence', bareContentId: true });

/** The quirks for the client that sent this User-Agent (none for an absent or unknown one). */
export function listNotifyQuirks(userAgent: string | undefined): ListNotifyQuirks {
  return userAgent !== undefined && /linphone/i.test(userAgent) ? LINPHONE : NONE;
}
