// The owner's decision about one watcher (approve, block, polite-block) written into the owner's
// pres-rules document the way an XCAP client writes it (RFC 4825 §8.2.3: a PUT of one <cr:rule>
// element by node selector, or of the whole document when there is none yet), through the same
// XcapDocuments.put the XCAP server uses. The rules authorizer follows document changes, so the
// watcher's subscription and the owner's watcher info change at once (RFC 5025 §3.2.1, RFC 3857).
//
// One rule per watcher, with an id derived from the watcher's address: a second decision replaces
// the first. RFC 4745 §10 combines rules to the most permissive, so a "block" here cannot override an
// "allow" from another of the owner's rules; the result says so when that is the case.
import { CT } from '../formats/content-types.js';
import { NS } from '../formats/xml.js';
import { parseXcapPath } from '../xcap/path.js';
import type { XcapDocuments } from '../xcap/documents.js';
import { XcapError } from '../xcap/errors.js';

export const DECISIONS = ['approve', 'block', 'polite-block'] as const;
export type Decision = (typeof DECISIONS)[number];

const SUB_HANDLING: Record<Decision, string> = { approve: 'allow', block: 'block', 'polite-block': 'polite-block' };

/** An xs:ID-safe rule id naming the watcher (rule ids are NCNames: no ':' or '@'). */
export function ruleIdFor(watcher: string): string {
  return `herald_${watcher.replace(/^sips?:/, '').replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

function ruleXml(id: string, watcher: string, decision: Decision): string {
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  // Approve shows everything, as the owner's "allow" in most clients does; the others show nothing.
  const transformations =
    decision === 'approve'
      ? '<cr:transformations><pr:provide-services><pr:all-services/></pr:provide-services><pr:provide-persons><pr:all-persons/></pr:provide-persons>' +
        '<pr:provide-devices><pr:all-devices/></pr:provide-devices><pr:provide-activities>true</pr:provide-activities><pr:provide-note>true</pr:provide-note></cr:transformations>'
      : '';
  return (
    `<cr:rule xmlns:cr="${NS.COMMON_POLICY}" xmlns:pr="${NS.PRES_RULES}" id="${id}">` +
    `<cr:conditions><cr:identity><cr:one id="${esc(watcher)}"/></cr:identity></cr:conditions>` +
    `<cr:actions><pr:sub-handling>${SUB_HANDLING[decision]}</pr:sub-handling></cr:actions>${transformations}</cr:rule>`
  );
}

export interface DecisionResult {
  owner: string;
  watcher: string;
  decision: Decision;
  rule: string;
  document: string;
  etag: string;
  created: boolean;
}

export async function decideWatcher(documents: XcapDocuments, owner: string, watcher: string, decision: Decision): Promise<DecisionResult> {
  const id = ruleIdFor(watcher);
  const docSelector = `/pres-rules/users/${encodeURIComponent(owner)}/index`;
  const rule = ruleXml(id, watcher, decision);
  const result = (w: { etag: string; created: boolean }): DecisionResult => ({ owner, watcher, decision, rule: id, document: `pres-rules/users/${owner}/index`, etag: w.etag, created: w.created });
  const docPath = parseXcapPath(docSelector);
  if (!documents.document(docPath.auid, owner, docPath.document)) {
    const doc = `<?xml version="1.0" encoding="UTF-8"?>\n<cr:ruleset xmlns="${NS.PRES_RULES}" xmlns:cr="${NS.COMMON_POLICY}" xmlns:pr="${NS.PRES_RULES}">${rule}</cr:ruleset>`;
    try {
      return result(await documents.put({ ...docPath, owner, xui: owner }, doc, CT.AUTH_POLICY, { ifNoneMatch: '*' }));
    } catch (e) {
      // Somebody created it meanwhile: fall through to the element PUT.
      if (!(e instanceof XcapError) || e.status !== 412) throw e;
    }
  }
  const selector = `${docSelector}/~~/cr:ruleset/cr:rule%5b@id=%22${id}%22%5d`;
  const path = parseXcapPath(selector, `xmlns(cr=${NS.COMMON_POLICY})`);
  return result(await documents.put({ ...path, owner, xui: owner }, rule, CT.XCAP_EL));
}
