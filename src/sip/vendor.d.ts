// Types for the parts of the untyped `sip` package (kirm/sip.js 0.0.6) that Herald uses. Only
// src/sip/ imports 'sip'; everything past src/sip/codec.ts sees Herald's own typed messages.
declare module 'sip' {
  export interface RawUri {
    schema?: string;
    user?: string;
    password?: string;
    host: string;
    port?: number;
    params: Record<string, string | null>;
    headers: Record<string, string>;
  }
  export interface RawNameAddr {
    name?: string;
    uri: string | RawUri | undefined;
    params: Record<string, string | null>;
  }
  export interface RawVia {
    version?: string;
    protocol: string;
    host: string;
    port?: number;
    params: Record<string, string | null>;
  }
  export interface RawHeaders {
    via?: RawVia[];
    to?: RawNameAddr;
    from?: RawNameAddr;
    'call-id'?: string;
    cseq?: { seq: number; method: string };
    contact?: RawNameAddr[] | '*';
    route?: RawNameAddr[];
    'record-route'?: RawNameAddr[];
    'content-length'?: number;
    [name: string]: unknown;
  }
  export interface RawMessage {
    method?: string;
    uri?: string | RawUri;
    status?: number;
    reason?: string;
    version?: string;
    headers: RawHeaders;
    /** A latin1 ("binary") string: one char per byte. */
    content?: string;
  }
  export interface ResolvedAddress {
    protocol: string;
    address: string;
    port: number;
  }
  export function parse(data: Buffer | string): RawMessage | undefined;
  export function stringify(m: RawMessage): string;
  export function parseUri(s: string): RawUri | undefined;
  export function stringifyUri(u: RawUri | string): string;
  export function resolve(uri: RawUri, cb: (addresses: ResolvedAddress[]) => void): void;
  const sip: {
    parse: typeof parse;
    stringify: typeof stringify;
    parseUri: typeof parseUri;
    stringifyUri: typeof stringifyUri;
    resolve: typeof resolve;
  };
  export default sip;
}
