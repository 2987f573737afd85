// One reading of a received message, made before the header firewall judges it: every line ends
// in CRLF, and the header section is fields and their continuations only, or the message is
// refused. The readers after us (relay, Maildir readers, mailbox servers) then split it as we do.
// A message arriving in chunks is read the same way: its header section is found and read whole
// (HeaderSectionScanner), its body's line ends are normalised as it streams (LineEndNormalizer).
//
// Decisions, each because some reader after us would read the bytes otherwise:
// - Bare CR and bare LF become CRLF, in the header section and the body: nodemailer does it on
//   relay, and parsers of stored mail do it too, so what we store is what they will see. A bare CR
//   in a header thus starts a new line, and that line is judged like any other.
// - Refused (550 5.6.0): an empty line reached through a bare CR ends the header section early for
//   readers that split at CR, and not at all for those that split at LF only (mailsplit, Dovecot,
//   Postfix); a NUL byte in the header section (C readers end the line there); a continuation line
//   with no field above it; a line of white space only (some readers end the header section
//   there); and any field (a line and its continuations) that is not `ftext+ ":"`: a "From " mbox
//   line, a line without a colon, a field name with a control character, a space or an 8-bit byte.
// - White space before the colon (RFC 5322 obs-syntax, "Name : value", folding included) is read as
//   lenient readers read it, the field "Name", and marked `spaced`: the firewall removes such a
//   field when it is one only domsec may set, and refuses the message for any other (strict
//   readers would not see that field at all).
// - Kept: NUL and other bytes in the body, 8-bit bytes in field values, and a header section with
//   no empty line after it (a message without body, RFC 5322 §3.5).

/** One header field: its name as written and its lines, each ending in CRLF (latin1 text). */
export interface HeaderField {
  name: string;
  /** The field line and its continuation lines, CRLF included. */
  text: string;
  /** Its first line's number in the header section, from 1. */
  line: number;
  /**
   * White space (folding included) between the name and the colon: RFC 5322 obs-optional, which
   * lenient readers take as the field `name` and strict ones as no field at all.
   */
  spaced: boolean;
}

export interface MessageReading {
  fields: HeaderField[];
  /** From the empty line that ends the header section on (empty when there is none). */
  rest: Buffer;
}

/** Why a message cannot be read one way only; the detail of the 550 5.6.0 reply. */
export interface MalformedMessage {
  malformed: string;
}

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n', 'latin1');
// RFC 5322 §3.6.8: field-name = 1*ftext, printable US-ASCII except the colon.
const FIELD = /^[\x21-\x39\x3b-\x7e]+:/;
const SPACED_FIELD = /^[\x21-\x39\x3b-\x7e]+[ \t]+:/;

/** The message with CRLF line ends and its header fields, or why it is refused. */
export function readMessage(raw: Buffer): MessageReading | MalformedMessage {
  const normal = normalizeLineEnds(raw);
  if ('malformed' in normal) return normal;
  const headerLength = headerSectionLength(normal);
  const header = normal.subarray(0, headerLength);
  if (header.indexOf(0) !== -1) return { malformed: 'a NUL byte in the header section' };
  const fields = readFields(header.toString('latin1'));
  if ('malformed' in fields) return fields;
  return { fields, rest: normal.subarray(headerLength) };
}

/**
 * The message with every line ending in CRLF: the same buffer when it already does (the common
 * case, found with indexOf and not copied), else a normalised copy; refused when a bare CR would
 * make the empty line that ends the header section.
 */
export function normalizeLineEnds(raw: Buffer): Buffer | MalformedMessage {
  if (endsEveryLineInCrlf(raw)) {
    return raw.length === 0 || raw[raw.length - 1] === LF
      ? raw
      : Buffer.concat([raw, Buffer.from('\r\n')]);
  }
  const text = raw.toString('latin1');
  const refusal = bareCrEndingHeader(text);
  if (refusal !== undefined) return refusal;
  const normal = text.replace(/\r\n|\r|\n/g, '\r\n');
  return Buffer.from(normal.endsWith('\r\n') ? normal : `${normal}\r\n`, 'latin1');
}

/** Whether every CR is followed by LF and every LF preceded by CR. */
function endsEveryLineInCrlf(raw: Buffer): boolean {
  let position = 0;
  for (;;) {
    const cr = raw.indexOf(CR, position);
    const lf = raw.indexOf(LF, position);
    if (cr === -1) return lf === -1;
    if (lf !== cr + 1) return false;
    position = lf + 1;
  }
}

/**
 * Walks the lines as a reader splitting at CR, LF and CRLF sees them, up to the first empty one:
 * that empty line must end in LF and follow a line ending in LF, or readers splitting at LF only
 * would not see the header section end there.
 */
function bareCrEndingHeader(text: string): MalformedMessage | undefined {
  const ends = /\r\n|\r|\n/g;
  let lineStart = 0;
  let previous = '\n';
  for (let match = ends.exec(text); match !== null; match = ends.exec(text)) {
    const end = match[0];
    if (match.index === lineStart) {
      if (end === '\r' || previous === '\r') {
        return { malformed: 'a bare CR ends the header section' };
      }
      return undefined;
    }
    previous = end;
    lineStart = match.index + end.length;
  }
  return undefined;
}

/** Bytes of the header section of a CRLF message, its final CRLF included, without the empty line. */
function headerSectionLength(normal: Buffer): number {
  if (normal[0] === CR && normal[1] === LF) return 0;
  const empty = normal.indexOf('\r\n\r\n');
  return empty === -1 ? normal.length : empty + 2;
}

function readFields(header: string): HeaderField[] | MalformedMessage {
  const fields: HeaderField[] = [];
  let start = -1; // where the field being read begins
  let line = 0;
  let startLine = 0;
  let position = 0;
  while (position < header.length) {
    const lineEnd = header.indexOf('\r\n', position);
    const end = lineEnd === -1 ? header.length : lineEnd + 2;
    line += 1;
    const first = header.charCodeAt(position);
    if (first === 0x20 || first === 0x09) {
      if (start === -1)
        return { malformed: 'a continuation line at the top of the header section' };
      if (/^[ \t]*\r\n$/.test(header.slice(position, end))) {
        return { malformed: `line ${line} of the header section has only white space` };
      }
    } else {
      if (start !== -1) {
        const field = judged(header.slice(start, position), startLine);
        if ('malformed' in field) return field;
        fields.push(field);
      }
      start = position;
      startLine = line;
    }
    position = end;
  }
  if (start === -1) return fields;
  const field = judged(header.slice(start), startLine);
  if ('malformed' in field) return field;
  fields.push(field);
  return fields;
}

/** A field's lines as a field, or why they are not one. */
function judged(text: string, line: number): HeaderField | MalformedMessage {
  const name = FIELD.exec(text)?.[0];
  if (name !== undefined) return { name: name.slice(0, -1), text, line, spaced: false };
  // Folding may hide white space before the colon: "Name\r\n : value" is "Name : value".
  const unfolded = text.replace(/\r\n/g, '');
  const spaced = SPACED_FIELD.exec(unfolded)?.[0];
  if (spaced !== undefined) {
    return { name: /^[^ \t:]+/.exec(spaced)?.[0] ?? '', text, line, spaced: true };
  }
  return { malformed: `line ${line} of the header section ${fault(unfolded)}` };
}

/** What is wrong with a header line that is neither a field nor a continuation. */
function fault(line: string): string {
  if (line.startsWith('From ')) return 'is an mbox From line';
  if (!line.includes(':')) return 'is not a header field';
  return 'has a field name outside RFC 5322 ftext';
}

/** RFC 5322 comments (nested, with quoted-pairs) removed outside quoted strings; undefined if unbalanced. */
export function withoutComments(value: string): string | undefined {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i += 1) {
    const char = value[i] ?? '';
    if (char === '\\') {
      if (depth === 0) out += value.slice(i, i + 2);
      i += 1;
    } else if (quoted) {
      out += char;
      if (char === '"') quoted = false;
    } else if (char === '(') {
      depth += 1;
      if (depth === 1) out += ' '; // a comment separates tokens like white space
    } else if (depth > 0) {
      if (char === ')') depth -= 1;
    } else {
      if (char === '"') quoted = true;
      out += char;
    }
  }
  return depth === 0 ? out : undefined;
}

/** Where the header section of a message as received ends: the empty line after it. */
export interface HeaderSectionEnd {
  /** Bytes of the header section, up to the empty line (the size maxHeaderSize limits). */
  size: number;
  /** Bytes up to and including the empty line: what prepareReceived reads; the body follows. */
  end: number;
}

/**
 * Finds the end of the header section in a message arriving in chunks, reading line ends as
 * normalizeLineEnds does (CRLF, then a bare CR or LF) so that the split falls where readMessage
 * would put it; a CR at the end of a chunk waits for the next byte. Each byte is looked at once.
 */
export class HeaderSectionScanner {
  /** Bytes seen so far. */
  private seen = 0;
  private lineStart = 0;
  /** Where a CR whose next byte has not arrived yet is; -1: none. */
  private pendingCr = -1;
  private found: HeaderSectionEnd | undefined;

  /** The end once a chunk brought it (then later chunks are not read), else undefined. */
  push(chunk: Buffer): HeaderSectionEnd | undefined {
    if (this.found !== undefined) return this.found;
    const base = this.seen;
    this.seen += chunk.length;
    let position = 0;
    if (this.pendingCr !== -1 && chunk.length > 0) {
      const cr = this.pendingCr;
      this.pendingCr = -1;
      const crlf = chunk[0] === LF;
      if (crlf) position = 1;
      if (this.lineEnd(cr, base + position)) return this.found;
    }
    while (position < chunk.length) {
      const lf = chunk.indexOf(LF, position);
      const crAt = chunk.indexOf(CR, position);
      const cr = crAt !== -1 && (lf === -1 || crAt < lf) ? crAt : -1;
      if (cr === -1 && lf === -1) return undefined;
      if (cr === -1) {
        position = lf + 1;
        if (this.lineEnd(base + lf, base + position)) return this.found;
        continue;
      }
      if (cr + 1 === chunk.length) {
        this.pendingCr = base + cr;
        return undefined;
      }
      position = chunk[cr + 1] === LF ? cr + 2 : cr + 1;
      if (this.lineEnd(base + cr, base + position)) return this.found;
    }
    return undefined;
  }

  /** At the end of the data: where the header section ends (all of it, when no empty line came). */
  finish(): HeaderSectionEnd {
    if (this.found === undefined && this.pendingCr !== -1) this.lineEnd(this.pendingCr, this.seen);
    this.pendingCr = -1;
    return this.found ?? { size: this.seen, end: this.seen };
  }

  /**
   * A lower bound of the header section's size while its end has not been seen: a header section
   * whose end is not within the bytes seen is at least this long.
   */
  get sizeAtLeast(): number {
    return this.found?.size ?? Math.max(this.lineStart, this.seen - 1);
  }

  /** A line end from `start` to `end`: true when it ends the empty line that ends the section. */
  private lineEnd(start: number, end: number): boolean {
    if (start === this.lineStart) {
      this.found = { size: start, end };
      return true;
    }
    this.lineStart = end;
    return false;
  }
}

/**
 * normalizeLineEnds for a body arriving in chunks (after the header section's empty line): bare
 * CR and bare LF become CRLF, a CR at the end of a chunk is held until the next byte says which it
 * is, and a body that does not end in a line end gets one. Chunks already in CRLF pass uncopied.
 */
export class LineEndNormalizer {
  private heldCr = false;
  private lastByte = -1;

  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    let start = 0;
    let prefix: Buffer | undefined;
    if (this.heldCr) {
      this.heldCr = false;
      prefix = CRLF;
      if (chunk[0] === LF) start = 1;
    }
    let end = chunk.length;
    if (chunk[end - 1] === CR) {
      this.heldCr = true;
      end -= 1;
    }
    const middle = chunk.subarray(start, end);
    const normal = endsEveryLineInCrlf(middle)
      ? middle
      : Buffer.from(middle.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');
    const out = prefix === undefined ? normal : Buffer.concat([prefix, normal]);
    if (out.length > 0) this.lastByte = out[out.length - 1] ?? -1;
    return out;
  }

  /** What completes the body: CRLF for a held CR or a last line without an end. */
  finish(): Buffer {
    const held = this.heldCr;
    this.heldCr = false;
    if (held || (this.lastByte !== -1 && this.lastByte !== LF)) {
      this.lastByte = LF;
      return CRLF;
    }
    return Buffer.alloc(0);
  }
}
