// Types for the parts of xmpp.js (untyped JavaScript) that the gateway uses. Only gateways/xmpp imports
// xmpp.js (ARCHITECTURE.md), and only wire.ts touches its elements: everything past wire.ts sees the
// gateway's own typed stanzas.
declare module '@xmpp/xml' {
  import { EventEmitter } from 'node:events';
  export type Attrs = Record<string, string | undefined>;
  export class Element {
    constructor(name: string, attrs?: Attrs);
    name: string;
    attrs: Attrs;
    children: (Element | string)[];
    toString(): string;
  }
  export function xml(name: string, attrs?: Attrs | null, ...children: (Element | string)[]): Element;
  /** The streaming parser (ltx): 'start' (the stream header), 'element' (each top-level child), 'end', 'error'. */
  export class Parser extends EventEmitter {
    write(data: string): void;
  }
  export default xml;
}

declare module '@xmpp/client' {
  import type { Element } from '@xmpp/xml';
  export interface Jid {
    toString(): string;
  }
  export interface XmppEntity {
    status: string;
    jid: Jid | null;
    start(): Promise<unknown>;
    stop(): Promise<unknown>;
    connect(service: string): Promise<unknown>;
    open(options: { domain: string; lang?: string }): Promise<unknown>;
    disconnect(): Promise<unknown>;
    send(el: Element): Promise<void>;
    on(event: 'stanza', fn: (el: Element) => void): this;
    on(event: 'status', fn: (status: string) => void): this;
    on(event: 'error', fn: (err: Error) => void): this;
    on(event: 'online', fn: () => void): this;
    on(event: 'offline' | 'disconnect', fn: () => void): this;
    removeAllListeners(event?: string): this;
    reconnect: { stop(): void; delay: number };
  }
  export interface IqCaller {
    request(el: Element, timeout?: number): Promise<Element>;
  }
  export interface IqCallee {
    set(ns: string, name: string, handler: (ctx: { stanza: Element; element: Element }) => Element | boolean | Promise<Element | boolean>): void;
  }
  export interface XmppClient extends XmppEntity {
    iqCaller: IqCaller;
    iqCallee: IqCallee;
  }
  export function client(options: { service: string; domain: string; username: string; password: string; resource?: string; timeout?: number }): XmppClient;
}
