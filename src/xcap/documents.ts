// The XCAP document store: whole documents, elements and attributes addressed by node selectors
// (RFC 4825 §8), kept in a store Collection and mirrored in memory as parsed trees.
//
// Every change is computed on a copy, serialized, re-parsed and re-validated as a whole by its
// application usage (RFC 4825 §8.2.5: the server MUST check the resulting document); any failure
// is a 409 with the xcap-error body and leaves the stored document as it was. Each change gets a
// new ETag (§7.11). Writes run one at a time, so conditional requests and the server-wide
// uniqueness of RLS service URIs (RFC 4826 §4.4.5) are checked against a state no other write
// can change in between. Listeners hear of every change after it is durable.
//
// The whole set is loaded at start-up; one Herald process owns the XCAP documents of its store.
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { XmlError, parseXml, serializeXml, type XmlElement } from '../formats/xml.js';
import { CT } from '../formats/content-types.js';
import type { Collection } from '../store/store.js';
import { canonicalOrSelf } from '../formats/uri.js';
import { checkPreconditions, type Preconditions } from './conditions.js';
import { XcapError, conflict, notFound, type UniquenessConflict } from './errors.js';
import { attributeBody, elementBody, namespaceBody, parseAttributeValue, parseElementFragment, rootNamespaceContext } from './fragment.js';
import { XcapPathError, parseNodeSelector, type NodeSelector, type XcapPath } from './path.js';
import { cloneElement, existingPrefix, insertElement, selectAll } from './select.js';
import { suggestAlternative, type XcapUsage } from './usage.js';
import { RLS_GLOBAL_INDEX, RLS_USER_INDEX, XCAP_CAPS_INDEX, rlsGlobalIndex, usageFor, xcapCapsDocument } from './usages.js';

export interface StoredXcapDoc {
  auid: string;
  /** 'global' or the XUI of the owner. */
  owner: string;
  name: string;
  body: string;
  etag: string;
  updatedAt: number;
}

export interface XcapRead { body: string; contentType: string; etag: string }
export interface XcapWrite { etag: string; created: boolean }
export type XcapChangeListener = (auid: string, owner: string, name: string) => void;

export interface XcapDocumentsOptions {
  collection: Collection<StoredXcapDoc>;
  log: Logger;
  maxDocumentBytes: number;
  /** Documents one owner may hold per usage (default 64). */
  maxDocumentsPerOwner?: number;
  /** RFC 4826 §4.4.5: a new service URI must not name an existing resource, e.g. a user's AOR. */
  isExistingResource?: (uri: string) => Promise<boolean>;
}

interface Entry { doc: StoredXcapDoc; root: XmlElement }

const docKey = (auid: string, owner: string, name: string): string => JSON.stringify([auid, owner, name]);
const ownerKey = (auid: string, owner: string): string => JSON.stringify([auid, owner]);
const newEtag = (): string => randomBytes(12).toString('base64url');
const hashEtag = (s: string): string => createHash('sha256').update(s).digest('base64url').slice(0, 22);

/** Percent-encodes a node-selector step for use as (part of) a path segment (RFC 3986 pchar). */
const encodeStep = (s: string): string =>
  s.replace(/[^A-Za-z0-9\-._~!$&'()*+,;=:@]/gu, (c) => encodeURIComponent(c));

export class XcapDocuments {
  private readonly cache = new Map<string, Entry>();
  private readonly byOwner = new Map<string, Set<string>>();
  /** Per AUID: canonical server-unique value -> key of the document holding it. */
  private readonly unique = new Map<string, Map<string, string>>();
  private readonly uniqueOf = new Map<string, string[]>();
  private readonly listeners = new Set<XcapChangeListener>();
  private globalIndex: Entry | undefined;
  private readonly caps: Entry;
  private queue: Promise<unknown> = Promise.resolve();
  private announce: XcapChangeListener | undefined;

  constructor(private readonly opts: XcapDocumentsOptions) {
    const body = xcapCapsDocument();
    this.caps = { doc: { ...XCAP_CAPS_INDEX, body, etag: hashEtag(body), updatedAt: 0 }, root: parseXml(body) };
  }

  static async open(opts: XcapDocumentsOptions): Promise<XcapDocuments> {
    const d = new XcapDocuments(opts);
    await d.load();
    return d;
  }

  /** Loads every stored document into memory; a document that no longer parses is logged and skipped. */
  async load(): Promise<void> {
    for (const [k, doc] of await this.opts.collection.all()) this.adopt(k, doc);
  }

  /**
   * Joins a cluster: every write is told to the other nodes once durable (`announce`), and a write
   * decides on the shared store's copy of its document, read again first (another node may have
   * changed it a moment ago).
   */
  share(announce: XcapChangeListener): void {
    this.announce = announce;
  }

  /** Another node changed a document: read it again from the shared store and tell the listeners. */
  reload(auid: string, owner: string, name: string): Promise<void> {
    return this.exclusive(async () => {
      if (this.adopt(docKey(auid, owner, name), await this.opts.collection.get(docKey(auid, owner, name)))) this.emit(auid, owner, name);
    });
  }

  /** Every document read again (the catch-up after the shared store was away); listeners hear of each change. */
  resync(): Promise<void> {
    return this.exclusive(async () => {
      const stored = new Map(await this.opts.collection.all());
      const changed: StoredXcapDoc[] = [];
      for (const [k, e] of [...this.cache]) if (!stored.has(k) && this.adopt(k, undefined)) changed.push(e.doc);
      for (const [k, doc] of stored) if (this.adopt(k, doc)) changed.push(doc);
      for (const d of changed) this.emit(d.auid, d.owner, d.name);
    });
  }

  /** Takes the stored copy of a document (undefined: gone) in place of the cached one; true if that changed anything. */
  private adopt(k: string, doc: StoredXcapDoc | undefined): boolean {
    const prev = this.cache.get(k);
    if (!doc) {
      if (prev) this.forget(k, prev);
      return prev !== undefined;
    }
    if (prev?.doc.etag === doc.etag) return false;
    const usage = usageFor(doc.auid);
    try {
      if (!usage) throw new Error('unknown application usage');
      this.commit(k, doc, parseXml(doc.body, { maxBytes: Math.max(this.opts.maxDocumentBytes, doc.body.length * 3) }), usage);
      return true;
    } catch (e) {
      this.opts.log.error({ auid: doc.auid, owner: doc.owner, name: doc.name, err: (e as Error).message }, 'stored XCAP document skipped');
      return false;
    }
  }

  /** Calls `listener` after every successful change; returns a function that unsubscribes. */
  onChange(listener: XcapChangeListener): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  /** A document, including the generated global ones, for Herald's own readers (pres-rules, RLS). */
  document(auid: string, owner: string, name: string): StoredXcapDoc | undefined {
    return this.lookup(auid, owner, name)?.doc;
  }

  /** The parsed tree of a document. Callers must not modify it. */
  parsed(auid: string, owner: string, name: string): XmlElement | undefined {
    return this.lookup(auid, owner, name)?.root;
  }

  /** Names of the documents an owner holds in a usage (RFC 5025 §9.7: all of them apply). */
  names(auid: string, owner: string): string[] {
    return [...(this.byOwner.get(ownerKey(auid, owner)) ?? [])].sort();
  }

  /** GET (RFC 4825 §8.3). */
  get(path: XcapPath): XcapRead {
    const usage = this.usage(path);
    const entry = this.lookup(path.auid, path.owner, path.document);
    if (!entry) throw notFound('no such document');
    const etag = entry.doc.etag;
    if (path.nodeSelector === undefined) return { body: entry.doc.body, contentType: usage.mime, etag };
    const sel = this.selector(path, usage);
    const found = selectAll(entry.root, sel.steps);
    if (found.length !== 1) throw notFound('no such element');
    const el = (found[0] as { el: XmlElement }).el;
    if (sel.terminal?.kind === 'attribute') {
      const value = Object.prototype.hasOwnProperty.call(el.attrs, sel.terminal.key) ? el.attrs[sel.terminal.key] : undefined;
      if (value === undefined) throw notFound('no such attribute');
      return { body: attributeBody(value), contentType: CT.XCAP_ATT, etag };
    }
    if (sel.terminal?.kind === 'namespace') return { body: namespaceBody(el), contentType: CT.XCAP_NS, etag };
    return { body: elementBody(el), contentType: CT.XCAP_EL, etag };
  }

  /** PUT of a document, element or attribute (RFC 4825 §8.2). `mediaType` is the bare Content-Type. */
  async put(path: XcapPath, body: string, mediaType: string | undefined, pre: Preconditions = {}): Promise<XcapWrite> {
    const usage = this.writable(path);
    return this.exclusive(async () => {
      const k = await this.current(path);
      const cur = this.cache.get(k);
      checkPreconditions(cur?.doc.etag, pre);
      let text: string;
      let created: boolean;
      if (path.nodeSelector === undefined) {
        // RFC 4825 §8.2.2: the body must carry the usage's MIME type.
        if (mediaType !== usage.mime) throw new XcapError(415, `a ${usage.auid} document is ${usage.mime}`);
        text = body;
        created = cur === undefined;
      } else {
        if (!cur) throw conflict({ kind: 'no-parent', phrase: 'the document does not exist' });
        const sel = this.selector(path, usage);
        const change = sel.terminal?.kind === 'attribute'
          ? this.putAttribute(cur, sel, body, mediaType, path)
          : this.putElement(cur, sel, body, mediaType, path, usage);
        text = serializeXml(change.root);
        created = change.created;
      }
      const root = this.parseResult(text, path.nodeSelector === undefined);
      usage.validate(root);
      await this.checkServerUnique(usage, k, root, cur?.root);
      if (!cur && this.names(path.auid, path.owner).length >= (this.opts.maxDocumentsPerOwner ?? 64)) {
        throw conflict({ kind: 'constraint-failure', phrase: 'too many documents' });
      }
      const etag = await this.save(k, path, text, root, usage);
      return { etag, created };
    });
  }

  /** DELETE of a document, element or attribute (RFC 4825 §8.4). The ETag is absent once the document is gone. */
  async delete(path: XcapPath, pre: Preconditions = {}): Promise<{ etag?: string }> {
    const usage = this.writable(path);
    return this.exclusive(async () => {
      const k = await this.current(path);
      const cur = this.cache.get(k);
      if (!cur) throw notFound('no such document');
      checkPreconditions(cur.doc.etag, pre);
      if (path.nodeSelector === undefined) {
        await this.opts.collection.delete(k);
        this.forget(k, cur);
        this.emit(path.auid, path.owner, path.document);
        this.announce?.(path.auid, path.owner, path.document);
        return {};
      }
      const sel = this.selector(path, usage);
      if (sel.terminal?.kind === 'namespace') throw new XcapError(405, 'the namespace selector is read-only');
      const root = cloneElement(cur.root);
      const found = selectAll(root, sel.steps);
      const target = found[0];
      if (found.length !== 1 || target === undefined) throw notFound('no such element');
      if (sel.terminal?.kind === 'attribute') {
        if (!Object.prototype.hasOwnProperty.call(target.el.attrs, sel.terminal.key)) throw notFound('no such attribute');
        delete target.el.attrs[sel.terminal.key];
      } else {
        if (!target.parent) throw conflict({ kind: 'cannot-delete', phrase: 'the root element cannot be deleted; delete the document' });
        target.parent.children.splice(target.parent.children.indexOf(target.el), 1);
        // §8.4: a DELETE must be idempotent: the URI must not now select another element.
        if (selectAll(root, sel.steps).length > 0) throw conflict({ kind: 'cannot-delete', phrase: 'the node selector would then select another element' });
      }
      const text = serializeXml(root);
      const parsed = this.parseResult(text, false);
      usage.validate(parsed);
      return { etag: await this.save(k, path, text, parsed, usage) };
    });
  }

  // ------------------------------------------------------------------------------------------

  private putAttribute(cur: Entry, sel: NodeSelector, body: string, mediaType: string | undefined, path: XcapPath): { root: XmlElement; created: boolean } {
    if (mediaType !== CT.XCAP_ATT) throw new XcapError(415, `an attribute is ${CT.XCAP_ATT}`);
    const value = parseAttributeValue(body);
    const root = cloneElement(cur.root);
    const found = selectAll(root, sel.steps);
    const target = found[0];
    if (found.length !== 1 || target === undefined) throw this.noParent(cur.root, sel, path, sel.steps.length);
    const attrKey = (sel.terminal as { key: string }).key;
    const created = !Object.prototype.hasOwnProperty.call(target.el.attrs, attrKey);
    Object.defineProperty(target.el.attrs, attrKey, { value, enumerable: true, writable: true, configurable: true });
    return { root, created };
  }

  private putElement(cur: Entry, sel: NodeSelector, body: string, mediaType: string | undefined, path: XcapPath, usage: XcapUsage): { root: XmlElement; created: boolean } {
    if (sel.terminal?.kind === 'namespace') throw new XcapError(405, 'the namespace selector is read-only');
    if (mediaType !== CT.XCAP_EL) throw new XcapError(415, `an element is ${CT.XCAP_EL}`);
    const el = parseElementFragment(body, rootNamespaceContext(cur.doc.body, cur.root, usage.prefixes), this.opts.maxDocumentBytes);
    let root = cloneElement(cur.root);
    const found = selectAll(root, sel.steps);
    let created = false;
    if (found.length > 1) throw conflict({ kind: 'cannot-insert', phrase: 'the node selector selects several elements' });
    const target = found[0];
    if (target !== undefined) {
      // Replace (§8.2.4).
      if (target.parent) target.parent.children[target.parent.children.indexOf(target.el)] = el;
      else root = el;
    } else {
      const outcome = insertElement(root, sel.steps, el);
      if (!outcome.ok) {
        if (outcome.reason === 'no-parent') throw this.noParent(cur.root, sel, path, sel.steps.length - 1);
        throw conflict({ kind: 'cannot-insert', phrase: 'the element cannot be inserted where the node selector points' });
      }
      created = true;
    }
    // §8.2.3–8.2.4: a GET of the same URI must return what was PUT, or the PUT is not idempotent.
    const after = selectAll(root, sel.steps);
    if (after.length !== 1 || after[0]?.el !== el) {
      throw conflict({ kind: 'cannot-insert', phrase: 'the element does not match the node selector' });
    }
    return { root, created };
  }

  /** 409 <no-parent> naming the closest existing ancestor (RFC 4825 §11.2), relative to the XCAP root. */
  private noParent(root: XmlElement, sel: NodeSelector, path: XcapPath, within: number): XcapError {
    const n = existingPrefix(root, sel.steps.slice(0, within));
    let ancestor = path.rawDocumentSelector;
    if (n > 0) {
      ancestor += '/~~/' + sel.steps.slice(0, n).map((s) => encodeStep(s.text)).join('/');
      if (path.namespaces.size > 0) {
        ancestor += '?' + [...path.namespaces].map(([p, u]) => `xmlns(${p}=${encodeStep(u.replace(/[()^]/g, '^$&'))})`).join('');
      }
    }
    return conflict({ kind: 'no-parent', ancestor });
  }

  private parseResult(text: string, whole: boolean): XmlElement {
    try {
      return parseXml(text, { maxBytes: this.opts.maxDocumentBytes });
    } catch (e) {
      if (!(e instanceof XmlError)) throw e;
      if (/UTF-8/.test(e.message)) throw conflict({ kind: 'not-utf-8' });
      throw conflict(whole ? { kind: 'not-well-formed', phrase: e.message } : { kind: 'constraint-failure', phrase: `resulting document: ${e.message}` });
    }
  }

  /** RFC 4826 §4.4.5: service URIs are unique server-wide and do not shadow existing resources. */
  private async checkServerUnique(usage: XcapUsage, k: string, root: XmlElement, previous: XmlElement | undefined): Promise<void> {
    if (!usage.serverUnique) return;
    const index = this.unique.get(usage.auid) ?? new Map<string, string>();
    const values = usage.serverUnique(root);
    const mine = new Set(values.map((v) => v.canonical));
    const before = new Set(previous ? usage.serverUnique(previous).map((v) => v.canonical) : []);
    const taken = (candidate: string): boolean => {
      const c = canonicalOrSelf(candidate);
      return index.has(c) || mine.has(c);
    };
    const conflicts: UniquenessConflict[] = [];
    for (const v of values) {
      const holder = index.get(v.canonical);
      let clash = holder !== undefined && holder !== k;
      if (!clash && !before.has(v.canonical) && this.opts.isExistingResource) clash = await this.opts.isExistingResource(v.value);
      if (clash) conflicts.push({ field: v.field, altValues: suggestAlternative(v.value, taken) });
    }
    if (conflicts.length > 0) throw conflict({ kind: 'uniqueness-failure', exists: conflicts });
  }

  private async save(k: string, path: XcapPath, text: string, root: XmlElement, usage: XcapUsage): Promise<string> {
    const doc: StoredXcapDoc = { auid: path.auid, owner: path.owner, name: path.document, body: text, etag: newEtag(), updatedAt: Date.now() };
    await this.opts.collection.put(k, doc);
    this.commit(k, doc, root, usage);
    this.emit(doc.auid, doc.owner, doc.name);
    this.announce?.(doc.auid, doc.owner, doc.name);
    return doc.etag;
  }

  private commit(k: string, doc: StoredXcapDoc, root: XmlElement, usage: XcapUsage): void {
    const prev = this.cache.get(k);
    if (prev) this.forget(k, prev);
    this.cache.set(k, { doc, root });
    const ok = ownerKey(doc.auid, doc.owner);
    const names = this.byOwner.get(ok) ?? new Set<string>();
    names.add(doc.name);
    this.byOwner.set(ok, names);
    if (usage.serverUnique) {
      const index = this.unique.get(doc.auid) ?? new Map<string, string>();
      this.unique.set(doc.auid, index);
      const values = usage.serverUnique(root).map((v) => v.canonical);
      for (const v of values) index.set(v, k);
      this.uniqueOf.set(k, values);
    }
    if (doc.auid === RLS_GLOBAL_INDEX.auid) this.globalIndex = undefined;
  }

  private forget(k: string, entry: Entry): void {
    this.cache.delete(k);
    const ok = ownerKey(entry.doc.auid, entry.doc.owner);
    const names = this.byOwner.get(ok);
    names?.delete(entry.doc.name);
    if (names?.size === 0) this.byOwner.delete(ok);
    const index = this.unique.get(entry.doc.auid);
    for (const v of this.uniqueOf.get(k) ?? []) if (index?.get(v) === k) index.delete(v);
    this.uniqueOf.delete(k);
    if (entry.doc.auid === RLS_GLOBAL_INDEX.auid) this.globalIndex = undefined;
  }

  private emit(auid: string, owner: string, name: string): void {
    const notify = (a: string, o: string, n: string): void => {
      for (const l of this.listeners) {
        try {
          l(a, o, n);
        } catch (e) {
          this.opts.log.error({ err: (e as Error).message }, 'XCAP change listener failed');
        }
      }
    };
    notify(auid, owner, name);
    // A user's rls-services "index" is part of the global index (RFC 4826 §4.4.8).
    if (auid === RLS_GLOBAL_INDEX.auid && owner !== 'global' && name === RLS_USER_INDEX) {
      notify(RLS_GLOBAL_INDEX.auid, RLS_GLOBAL_INDEX.owner, RLS_GLOBAL_INDEX.name);
    }
  }

  private lookup(auid: string, owner: string, name: string): Entry | undefined {
    if (owner === 'global') {
      if (auid === XCAP_CAPS_INDEX.auid && name === XCAP_CAPS_INDEX.name) return this.caps;
      if (auid === RLS_GLOBAL_INDEX.auid && name === RLS_GLOBAL_INDEX.name) return this.buildGlobalIndex();
      return undefined;
    }
    return this.cache.get(docKey(auid, owner, name));
  }

  private buildGlobalIndex(): Entry {
    if (this.globalIndex) return this.globalIndex;
    const parts: Entry[] = [];
    for (const e of this.cache.values()) {
      if (e.doc.auid === RLS_GLOBAL_INDEX.auid && e.doc.name === RLS_USER_INDEX) parts.push(e);
    }
    parts.sort((a, b) => (a.doc.owner < b.doc.owner ? -1 : a.doc.owner > b.doc.owner ? 1 : 0));
    const root = rlsGlobalIndex(parts.map((p) => p.root));
    const body = serializeXml(root);
    const etag = hashEtag(JSON.stringify(parts.map((p) => [p.doc.owner, p.doc.etag])));
    const updatedAt = parts.reduce((m, p) => Math.max(m, p.doc.updatedAt), 0);
    this.globalIndex = { doc: { ...RLS_GLOBAL_INDEX, body, etag, updatedAt }, root };
    return this.globalIndex;
  }

  private usage(path: XcapPath): XcapUsage {
    const usage = usageFor(path.auid);
    if (!usage || (path.scope === 'users' && !usage.userDocuments)) throw notFound('no such application usage');
    return usage;
  }

  /** Global documents are generated views (RFC 4826 §4.4.8, RFC 4825 §12): never written by clients. */
  private writable(path: XcapPath): XcapUsage {
    const usage = this.usage(path);
    if (path.scope === 'global') throw new XcapError(403, 'global documents are read-only');
    return usage;
  }

  private selector(path: XcapPath, usage: XcapUsage): NodeSelector {
    try {
      return parseNodeSelector(path.nodeSelector as string, usage.defaultNs, path.namespaces);
    } catch (e) {
      if (e instanceof XcapPathError) throw new XcapError(e.status, e.message);
      throw e;
    }
  }

  /** The document's key, its cached copy brought up to date from the shared store first in a cluster. */
  private async current(path: XcapPath): Promise<string> {
    const k = docKey(path.auid, path.owner, path.document);
    if (this.announce && this.adopt(k, await this.opts.collection.get(k))) this.emit(path.auid, path.owner, path.document);
    return k;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
