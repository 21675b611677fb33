// Where the RLS finds its lists: rls-services documents on the embedded XCAP server (RFC 4826 §4). The
// RLS reads the global index, the union of every user's `index` (§4.4.7–9); a service either holds its
// list inline or points at a resource-lists document; nested lists, entry-refs and externals that point
// into this XCAP server are followed, with loop detection, and flattened.
import type { Logger } from 'pino';
import {
  flattenList,
  parseResourceLists,
  parseRlsServices,
  type FlatMember,
  type ResourceList,
  type RlsService,
} from '../formats/resource-lists.js';
import { canonicalSipUri } from '../formats/uri.js';
import { NS } from '../formats/xml.js';
import type { XcapDocuments } from '../xcap/documents.js';
import { parseXcapPath } from '../xcap/path.js';
import { RLS_GLOBAL_INDEX } from '../xcap/usages.js';

export interface ResolvedList {
  service: RlsService;
  /** Only this watcher may subscribe (a private list, e.g. a user's roster); undefined: anyone. */
  owner?: string;
  members: FlatMember[];
  errors: string[];
  /** A list that contains itself (RFC 4826 §4.5: 502 for the subscriber). */
  loop: boolean;
}

export interface ListSource {
  /** Whether a URI is a list (synchronous: the index lives in memory). */
  has(uri: string): boolean;
  resolve(uri: string): Promise<ResolvedList | undefined>;
  /** Called when any list may have changed. */
  onChange(listener: () => void): void;
}

export interface XcapListSourceOptions {
  documents: XcapDocuments;
  /** The XCAP root path (e.g. /xcap-root): absolute references into it are resolved locally. */
  root: string;
  log: Logger;
  maxMembers: number;
}

export class XcapListSource implements ListSource {
  private index = new Map<string, RlsService>();
  private readonly listeners: (() => void)[] = [];

  constructor(private readonly o: XcapListSourceOptions) {
    this.rebuild();
    o.documents.onChange((auid) => {
      if (auid === 'rls-services') this.rebuild();
      if (auid === 'rls-services' || auid === 'resource-lists') for (const l of this.listeners) l();
    });
  }

  private rebuild(): void {
    const next = new Map<string, RlsService>();
    const doc = this.o.documents.document(RLS_GLOBAL_INDEX.auid, RLS_GLOBAL_INDEX.owner, RLS_GLOBAL_INDEX.name);
    if (doc) {
      try {
        for (const s of parseRlsServices(doc.body)) next.set(canonicalSipUri(s.uri), s);
      } catch (e) {
        this.o.log.warn({ err: (e as Error).message }, 'rls-services index unreadable; keeping the last good one');
        return;
      }
    }
    this.index = next;
  }

  has(uri: string): boolean {
    return this.index.has(canonicalSipUri(uri));
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  async resolve(uri: string): Promise<ResolvedList | undefined> {
    const service = this.index.get(canonicalSipUri(uri));
    if (!service) return undefined;
    let list = service.list;
    const errors: string[] = [];
    if (!list && service.resourceListRef) {
      list = this.fetch('external', service.resourceListRef);
      if (!list) errors.push(`resource-list ${service.resourceListRef} not found`);
    }
    if (!list) return { service, members: [], errors, loop: false };
    const r = await flattenList(list, (ref) => Promise.resolve(this.fetch(ref.kind, ref.target)), {
      maxMembers: this.o.maxMembers,
      ...(service.resourceListRef ? { rootAnchor: service.resourceListRef } : {}),
    });
    return { service, members: r.members, errors: [...errors, ...r.errors], loop: r.loop };
  }

  /**
   * Reads a <list> (or, for an entry-ref, an <entry>) from this XCAP server. `external` anchors are
   * absolute HTTP URIs; only those below our own root are followed (others are not fetched: an RLS
   * that fetches arbitrary URLs on a user's say-so is a request-forgery tool).
   */
  private fetch(kind: 'entry-ref' | 'external', target: string): ResourceList | undefined {
    let pathAndQuery: string;
    if (kind === 'external') {
      let u: URL;
      try {
        u = new URL(target);
      } catch {
        return undefined;
      }
      if (!u.pathname.startsWith(`${this.o.root}/`)) return undefined;
      pathAndQuery = u.pathname.slice(this.o.root.length) + u.search;
    } else {
      pathAndQuery = `/${target.replace(/^\/+/, '')}`;
    }
    const q = pathAndQuery.indexOf('?');
    try {
      const path = parseXcapPath(q < 0 ? pathAndQuery : pathAndQuery.slice(0, q), q < 0 ? undefined : pathAndQuery.slice(q + 1));
      if (path.auid !== 'resource-lists') return undefined;
      const read = this.o.documents.get(path);
      // An element fragment: wrap it so the resource-lists parser reads it as a document.
      const body = read.body.replace(/^<\?xml[^>]*>\s*/, '');
      const isEntry = /^<(?:[A-Za-z_][\w.-]*:)?entry[\s>/]/.test(body);
      const wrapped = `<resource-lists xmlns="${NS.RESOURCE_LISTS}">${isEntry ? `<list>${body}</list>` : body}</resource-lists>`;
      const lists = parseResourceLists(path.nodeSelector === undefined ? read.body : wrapped);
      return lists.length === 1 ? lists[0] : { items: lists };
    } catch (e) {
      this.o.log.debug({ target, err: (e as Error).message }, 'list reference not resolved');
      return undefined;
    }
  }
}

/** Lists that are member arrays kept elsewhere (e.g. an XMPP roster): `members` undefined = not a list. */
export interface MemberLists {
  members(listUri: string): string[] | undefined;
  owner?(listUri: string): string | undefined;
  onChange(listener: (listUri: string) => void): void;
}

/** A ListSource over MemberLists: the members are the list, nothing nested. */
export function memberListSource(lists: MemberLists): ListSource {
  return {
    has: (uri) => lists.members(uri) !== undefined,
    resolve: (uri) => {
      const m = lists.members(uri);
      if (m === undefined) return Promise.resolve(undefined);
      const owner = lists.owner?.(uri);
      return Promise.resolve({ service: { uri }, ...(owner ? { owner } : {}), members: m.map((u) => ({ uri: u, path: [] })), errors: [], loop: false });
    },
    onChange: (l) => lists.onChange(() => l()),
  };
}

/** Several list sources as one: the first that knows a URI answers for it. */
export function combinedListSource(sources: readonly ListSource[]): ListSource {
  return {
    has: (uri) => sources.some((s) => s.has(uri)),
    resolve: (uri) => sources.find((s) => s.has(uri))?.resolve(uri) ?? Promise.resolve(undefined),
    onChange: (l) => {
      for (const s of sources) s.onChange(l);
    },
  };
}
