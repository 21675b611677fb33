// The im-rules application usage: a user's rules for instant messages (RFC 3428 MESSAGE) addressed to
// them, as the SER presence server kept them: a common-policy document (RFC 4745) whose one action is
// <im-handling> (block, polite-block, allow). The schema (im-rules.xsd in docs terms):
//
//   <xs:schema targetNamespace="urn:herald:params:xml:ns:im-rules" elementFormDefault="qualified">
//     <xs:element name="im-handling">
//       <xs:simpleType><xs:restriction base="xs:token">
//         <xs:enumeration value="block"/><xs:enumeration value="polite-block"/><xs:enumeration value="allow"/>
//       </xs:restriction></xs:simpleType>
//     </xs:element>
//   </xs:schema>
//
// AUID "im-rules" (the name the issue and SER use; RFC 4825 §6 would want a vendor-prefixed AUID for a
// usage the IETF has not registered), MIME application/auth-policy+xml (RFC 4745 §13), default
// namespace Herald's, naming convention users/<AOR>/index like pres-rules (every document of the user
// applies, RFC 5025 §9.7 by analogy). No transformations are defined: a message is delivered or not.
// Pure: no I/O.

import { NS } from '../formats/xml.js';
import { IM_HANDLING_VALUE } from '../formats/im-rules.js';
import { key, type ElementRule } from './schema.js';
import { commonPolicyUsage } from './usage-common-policy.js';

const IM = NS.IM_RULES;

const RULES: Record<string, ElementRule> = {
  actions: { children: { [key(IM, 'im-handling')]: { rule: 'im-handling', max: 1 } } },
  'im-handling': { text: (t) => Object.prototype.hasOwnProperty.call(IM_HANDLING_VALUE, t) },
  transformations: {},
};

export const imRulesUsage = commonPolicyUsage({ auid: 'im-rules', ns: IM, prefix: 'im', rules: RULES });
