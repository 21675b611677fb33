// XCAP failures as HTTP statuses, and the application/xcap-error+xml body that RFC 4825 §11
// requires with a 409 so that a client can tell *which* constraint it broke and try again with a
// changed request (RFC 4825 §7, "the client SHOULD NOT simply retry").
import { NS, serializeXml, toReasonPhrase, type XmlElement } from '../formats/xml.js';

/** One <exists> of a <uniqueness-failure> (RFC 4825 §11.2): the offending field, optional alternatives. */
export interface UniquenessConflict {
  /** Where the duplicate is, as a node selector relative to the document (RFC 4825 §11.2 "field"). */
  field: string;
  altValues: string[];
}

/** The error conditions of RFC 4825 §11.2 that Herald produces. */
export type XcapCondition =
  | { kind: 'not-well-formed' | 'not-xml-frag' | 'schema-validation-error' | 'not-xml-att-value' |
      'cannot-insert' | 'cannot-delete' | 'constraint-failure' | 'not-utf-8'; phrase?: string }
  /** `ancestor` is relative to the XCAP root; the server makes it an absolute HTTP URI. */
  | { kind: 'no-parent'; ancestor?: string; phrase?: string }
  | { kind: 'uniqueness-failure'; exists: UniquenessConflict[]; phrase?: string };

export class XcapError extends Error {
  constructor(readonly status: number, message: string, readonly condition?: XcapCondition) {
    super(toReasonPhrase(message));
    this.name = 'XcapError';
  }
}

export function conflict(condition: XcapCondition): XcapError {
  return new XcapError(409, condition.phrase ?? condition.kind, condition);
}

export const notFound = (what: string): XcapError => new XcapError(404, what);

/** Serializes the xcap-error document (RFC 4825 §11.2). `absolute` turns a root-relative ancestor into a URI. */
export function xcapErrorBody(c: XcapCondition, absolute: (relative: string) => string = (r) => r): string {
  const el = (name: string, attrs: Record<string, string> = {}, children: XmlElement['children'] = []): XmlElement =>
    ({ ns: NS.XCAP_ERROR, name, attrs, children });
  const attrs: Record<string, string> = c.phrase !== undefined ? { phrase: toReasonPhrase(c.phrase, 200) } : {};
  let inner: XmlElement;
  if (c.kind === 'no-parent') {
    inner = el('no-parent', attrs, c.ancestor !== undefined ? [el('ancestor', {}, [absolute(c.ancestor)])] : []);
  } else if (c.kind === 'uniqueness-failure') {
    inner = el('uniqueness-failure', attrs, c.exists.map((x) =>
      el('exists', { field: x.field }, x.altValues.map((v) => el('alt-value', {}, [v])))));
  } else {
    inner = el(c.kind, attrs);
  }
  return serializeXml(el('xcap-error', {}, [inner]));
}
