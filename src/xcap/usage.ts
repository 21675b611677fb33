// What an XCAP application usage is (RFC 4825 §5): the contract every usage file implements and the
// registry (usages.ts) lists, kept apart from both so that neither imports the other.
// Pure: no I/O.

import type { XmlElement } from '../formats/xml.js';

/** A value that must be unique across every document of the usage on the server (RFC 4826 §4.4.5). */
export interface ServerUniqueValue {
  /** Where it is, as a node selector relative to the document (for <exists field>). */
  field: string;
  /** As written. */
  value: string;
  /** As compared. */
  canonical: string;
}

export interface XcapUsage {
  readonly auid: string;
  /** RFC 4825 §5.1: the MIME type of whole documents. */
  readonly mime: string;
  /** RFC 4825 §5.2: the namespace of unprefixed element names in node selectors. */
  readonly defaultNs: string;
  /** The usage's namespaces with their conventional prefixes (for PUT element fragments). */
  readonly prefixes: Readonly<Record<string, string>>;
  /** False for a usage with only generated global documents. */
  readonly userDocuments: boolean;
  /** RFC 4825 §5.3–5.4: schema and additional constraints; throws a 409 XcapError. */
  validate(root: XmlElement): void;
  serverUnique?(root: XmlElement): ServerUniqueValue[];
}

/** A value not in `taken`, for <alt-value>: "name-2", "name-3"... (SIP URIs: in the user part). */
export function suggestAlternative(value: string, taken: (candidate: string) => boolean): string[] {
  const at = /^(sips?:)([^@;?]+)(@.*)$/i.exec(value);
  for (let n = 2; n < 1000; n++) {
    const candidate = at ? `${at[1] as string}${at[2] as string}-${n}${at[3] as string}` : `${value}-${n}`;
    if (!taken(candidate)) return [candidate];
  }
  return [];
}
