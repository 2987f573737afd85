// One reading of a received message, made before the header firewall judges it: every line ends
// in CRLF, and the header section is fields and their continuations only, or the message is
// refused. The readers after us (relay, Maildir readers, mailbox servers) then split it as we do.
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
