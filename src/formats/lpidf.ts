// application/lpidf+xml: the "light PIDF" the SER presence agent (modules/pa, lpidf.c) served to old
// phones beside PIDF and XPIDF. Despite its name it is not XML but header-like lines: the presentity
// in a To line, then one Contact line per address with q=1 when open and q=0 when closed.
//
//   To: <sip:alice@example.com>\r\n
//   Contact: <sip:alice@192.0.2.1>;q=1\r\n
//
// Each PIDF tuple is one Contact (its <contact>, else the presentity itself); a document without
// tuples is the presentity, closed, as the SER PA wrote an offline user.
import type { PidfDocument } from './pidf.js';

/** A URI inside <…>: it must not close the bracket or break the line. */
function bracketed(uri: string): string {
  return uri.replace(/[<>\r\n]/g, '');
}

export function renderLpidf(doc: PidfDocument): string {
  const entity = bracketed(/^pres:/i.test(doc.entity) ? `sip:${doc.entity.slice(5)}` : doc.entity);
  const lines = [`To: <${entity}>`];
  const tuples = doc.tuples.length > 0 ? doc.tuples : [{ contact: undefined, basic: 'closed' as const }];
  for (const t of tuples) lines.push(`Contact: <${t.contact ? bracketed(t.contact) : entity}>;q=${t.basic === 'open' ? '1' : '0'}`);
  return lines.join('\r\n') + '\r\n';
}
