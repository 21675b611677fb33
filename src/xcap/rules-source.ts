// Where the authorizers get an owner's rule documents (pres-rules for src/policy/rules-authorizer.ts,
// im-rules for src/im/rules-authorizer.ts): from the embedded XCAP document store, or from an
// external XCAP server through XcapClient.
import type { RulesSource } from '../policy/rules-authorizer.js';
import type { XcapClient, XcapPoll } from './client.js';
import type { XcapDocuments } from './documents.js';

const PRES_RULES = 'pres-rules';

/**
 * Every pres-rules document of the presentity applies (RFC 5025 §9.7), and a change is reported
 * the moment it is stored. `presentity` is the AOR, which is how the server files users' documents.
 */
export function embeddedRulesSource(documents: XcapDocuments, auid: string = PRES_RULES): RulesSource {
  return {
    load: (presentity) => Promise.resolve(
      documents.names(auid, presentity).flatMap((n) => {
        const body = documents.document(auid, presentity, n)?.body;
        return body === undefined ? [] : [body];
      })),
    onChange: (listener) => {
      documents.onChange((changed, owner) => {
        if (changed === auid && owner !== 'global') listener(owner);
      });
    },
  };
}

/**
 * An external XCAP server: the presentity's "index" document (RFC 5025 §9.7 SHOULD; XCAP has no
 * directory listing to find others), polled every `pollIntervalMs` once it has been loaded. While
 * the server is unavailable the client serves the last good copy; with none, load() throws and
 * the authorizer blocks (fails closed).
 */
export function remoteRulesSource(client: XcapClient, pollIntervalMs: number, auid: string = PRES_RULES): RulesSource & { stop(): void; refresh(): void } {
  const listeners: ((presentity: string) => void)[] = [];
  const polls = new Map<string, XcapPoll>();
  const pathOf = (presentity: string): string => `${auid}/users/${encodeURIComponent(presentity)}/index`;
  return {
    async load(presentity) {
      const doc = await client.fetch(pathOf(presentity));
      if (!polls.has(presentity)) {
        // The poll reports the document it first sees too; only a tag other than this one is news.
        let known = doc?.etag ?? null;
        polls.set(presentity, client.poll([pathOf(presentity)], pollIntervalMs, (_p, d) => {
          const tag = d?.etag ?? null;
          if (tag === known) return;
          known = tag;
          for (const l of listeners) l(presentity);
        }));
      }
      return doc ? [doc.body] : [];
    },
    onChange(listener) {
      listeners.push(listener);
    },
    /** SIGHUP: every presentity's rules are read again now (the client revalidates its cached copies). */
    refresh() {
      for (const presentity of polls.keys()) for (const l of listeners) l(presentity);
    },
    stop() {
      for (const p of polls.values()) p.stop();
      polls.clear();
    },
  };
}
