// SIP PUBLISH (RFC 3903) to PublishOps: the request checks of §6 in the order the RFC gives them,
// each with its own answer, then the ESC (pa.ts) does the ETag work.
import { CT, mediaType } from '../formats/content-types.js';
import { PidfError, parsePidf, serializePidf, type PidfDocument } from '../formats/pidf.js';
import { applyPatch, parsePidfDiff, type PidfDiff } from '../formats/pidf-diff.js';
import { toReasonPhrase } from '../formats/xml.js';
import { aorOf } from '../formats/uri.js';
import { grantExpires } from '../sip/dialog.js';
import { header, mergeHeaders, type HeaderList } from '../sip/message.js';
import type { ServerTx } from '../sip/stack.js';
import { parseDeltaSeconds, parseEventHeader } from '../events/subscription.js';
import type { PresenceAgent, PublishOp } from './pa.js';

export interface PublishOptions {
  minExpires: number;
  defaultExpires: number;
  maxExpires: number;
  maxDocumentBytes: number;
  maxXmlDepth: number;
  commonHeaders: () => HeaderList;
  /**
   * The publisher's authenticated identity ('' when anonymous), or undefined when the request was
   * answered (a 401 challenge). Only the owner of an address of record publishes for it.
   */
  identify?: (tx: ServerTx) => Promise<string | undefined>;
  /** Most live publications one presentity may have (limits.max_publications_per_presentity). */
  maxPerPresentity?: number;
  /** Told of a PUBLISH for another user (by identity or by PIDF entity), for the auth-failure log. */
  onForeignPublish?: (tx: ServerTx, publisher: string, presentity: string) => void;
}

/** True when a PIDF entity names the presentity: its sip:/sips: AOR, or the pres: URI of it (RFC 3859). */
export function entityNames(entity: string, presentity: string): boolean {
  const e = entity.trim();
  const asSip = /^pres:/i.test(e) ? `sip:${e.slice(5)}` : e;
  return aorOf(asSip) === presentity;
}

export async function handlePublish(tx: ServerTx, pa: PresenceAgent, o: PublishOptions): Promise<void> {
  const rq = tx.request;
  const answer = (status: number, reason: string, extra: HeaderList = []) => tx.respond({ status, reason, headers: mergeHeaders(o.commonHeaders(), extra) });

  // §6 step 1: the Request-URI names a presentity this ESC is responsible for.
  const presentity = rq.ruri ? aorOf(rq.uri) : undefined;
  if (!presentity || !pa.handles(presentity)) return answer(404, 'Not Found');
  // §6 step 2: the event package.
  const ev = parseEventHeader(header(rq, 'event'));
  if (!ev || ev.event !== 'presence') return answer(489, 'Bad Event');
  if (o.identify) {
    const who = await o.identify(tx);
    if (who === undefined) return;
    if (who !== presentity) {
      o.onForeignPublish?.(tx, who, presentity);
      return answer(403, 'Forbidden');
    }
  }
  const ifMatch = header(rq, 'sip-if-match')?.trim();
  // §6 step 3 / §5: Expires bounds.
  const e = parseDeltaSeconds(header(rq, 'expires'));
  if (e === 'bad') return answer(400, 'Bad Expires');
  const g = grantExpires(e, o);
  if (!g.ok) return answer(423, 'Interval Too Brief', [['Min-Expires', String(g.minExpires)]]);
  const expires = g.expires;

  let document: PidfDocument | undefined;
  let body = rq.body;
  let diff: PidfDiff | undefined;
  if (rq.bodyBytes > 0) {
    const type = mediaType(header(rq, 'content-type'));
    // RFC 5264: partial publication in application/pidf-diff+xml (RFC 5262).
    if (type !== CT.PIDF && type !== CT.PIDF_DIFF) return answer(415, 'Unsupported Media Type', [['Accept', `${CT.PIDF}, ${CT.PIDF_DIFF}`]]);
    if (rq.bodyBytes > o.maxDocumentBytes) return answer(413, 'Request Entity Too Large');
    const limits = { maxBytes: o.maxDocumentBytes, maxDepth: o.maxXmlDepth };
    try {
      if (type === CT.PIDF) document = parsePidf(rq.body, limits);
      else {
        diff = parsePidfDiff(rq.body, limits);
        if (diff.kind === 'full') {
          document = diff.document;
          body = serializePidf(document); // kept (and restored) as the PIDF it is
        }
      }
    } catch (err) {
      if (err instanceof PidfError) return answer(400, toReasonPhrase(err.message));
      throw err;
    }
    // RFC 3863 §4.1.1: `entity` is the presentity's URL. A document naming another user is refused,
    // not rewritten: a rewrite would publish under alice's name what was written about bob. (A
    // pidf-diff patch carries no entity: it applies to the publication its ETag names.)
    if (document && !entityNames(document.entity, presentity)) {
      o.onForeignPublish?.(tx, o.identify ? presentity : '', presentity);
      return answer(400, 'PIDF Entity Does Not Match Presentity');
    }
  }
  const version = diff?.version;

  let op: PublishOp;
  if (!ifMatch) {
    // A patch needs the state it patches: an initial publication is full state.
    if (!document) return answer(400, diff ? 'Initial PUBLISH Must Be Full State' : 'Initial PUBLISH Without Body');
    if (expires === 0) return answer(400, 'Initial PUBLISH With Expires 0');
    op = { kind: 'initial', presentity, document, body, expires, ...(version !== undefined ? { version } : {}), ...(o.maxPerPresentity !== undefined ? { maxPerPresentity: o.maxPerPresentity } : {}) };
  } else if (expires === 0) {
    // §4.5: removal carries no body; one that does is still a removal (the body is ignored).
    op = { kind: 'remove', presentity, etag: ifMatch };
  } else if (document) {
    op = { kind: 'modify', presentity, etag: ifMatch, document, body, expires, ...(version !== undefined ? { version } : {}) };
  } else if (diff?.kind === 'patch') {
    const patch = diff;
    op = {
      kind: 'patch',
      presentity,
      etag: ifMatch,
      version: patch.version,
      expires,
      apply: (old) => {
        try {
          const d = applyPatch(old, patch.ops, patch.prefixes);
          return { ok: true, document: d, body: serializePidf(d) };
        } catch (err) {
          if (err instanceof PidfError) return { ok: false, status: 400, reason: toReasonPhrase(err.message) };
          throw err;
        }
      },
    };
  } else {
    op = { kind: 'refresh', presentity, etag: ifMatch, expires };
  }
  const result = await pa.publish(op);
  if (!result.ok) return answer(result.status, result.reason ?? 'Conditional Request Failed');
  answer(200, 'OK', [
    ['SIP-ETag', result.etag],
    ['Expires', String(result.expires)],
  ]);
}
