// Reading single header fields straight from a message's header bytes, without decoding the head to a
// string: what the hot paths need before (or instead of) the full parse — the framing's
// Content-Length of every datagram, and the three fields a NOTIFY's 200 is matched on (codec.ts
// peekResponse). Hand-written because it is a few byte comparisons; the full parse (parser.ts) still
// reads every message that is not this simple.

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;

/** The end of the line that starts at `pos` (the index of its CR or LF, or of the end of `head`). */
export function lineEnd(head: Buffer, pos: number): number {
  const lf = head.indexOf(LF, pos);
  const end = lf < 0 ? head.length : lf;
  return end > pos && head[end - 1] === CR ? end - 1 : end;
}

/** The start of the line after the one that starts at `pos` (head.length when none). */
export function nextLine(head: Buffer, pos: number): number {
  const lf = head.indexOf(LF, pos);
  return lf < 0 ? head.length : lf + 1;
}

/** Whether head[pos, end) begins with `lower` (lower-case ASCII letters and '-'), compared case-insensitively. */
export function wordAt(head: Buffer, pos: number, end: number, lower: string): boolean {
  const n = lower.length;
  if (pos + n > end) return false;
  for (let i = 0; i < n; i++) {
    // ASCII letters: OR 0x20 folds upper to lower case; '-' (0x2d) is unchanged by it.
    if ((head[pos + i]! | 0x20) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Whether the line at `pos` (before `end`) is the header `lower` (case-insensitive, blanks before the
 * separator allowed): the index after `sep` (':' for a header, '=' for a parameter), or -1.
 */
export function headerAt(head: Buffer, pos: number, end: number, lower: string, sep = COLON): number {
  if (!wordAt(head, pos, end, lower)) return -1;
  const i = skipBlanks(head, pos + lower.length, end);
  return i < end && head[i] === sep ? i + 1 : -1;
}

/** Skips spaces and tabs from `pos` up to `end`. */
export function skipBlanks(head: Buffer, pos: number, end: number): number {
  while (pos < end && (head[pos] === SP || head[pos] === HTAB)) pos++;
  return pos;
}

/** Trims spaces and tabs back from `end` down to `start`. */
export function trimBlanks(head: Buffer, start: number, end: number): number {
  while (end > start && (head[end - 1] === SP || head[end - 1] === HTAB)) end--;
  return end;
}

/**
 * The first line, from `from` and before `to` (the end of the header section), that starts with the
 * header `long` or its compact form `short` (RFC 3261 §7.3.3), as [value start, value end] with blanks
 * trimmed; undefined when there is none.
 */
export function findHeader(head: Buffer, long: string, short: string | undefined, from = 0, to = head.length): [number, number] | undefined {
  for (let pos = from; pos < to; pos = nextLine(head, pos)) {
    const end = lineEnd(head, pos);
    let v = headerAt(head, pos, end, long);
    if (v < 0 && short !== undefined) v = headerAt(head, pos, end, short);
    if (v >= 0) {
      const start = skipBlanks(head, v, end);
      return [start, trimBlanks(head, start, end)];
    }
  }
  return undefined;
}

/** The decimal number in head[start, end) (digits only; as Number() reads them, so very long ones are Infinity), or NaN. */
export function decimalAt(head: Buffer, start: number, end: number): number {
  if (end <= start) return NaN;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = head[i]! - 48;
    if (d < 0 || d > 9) return NaN;
    n = n * 10 + d;
  }
  return n;
}
