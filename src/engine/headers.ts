// The header firewall and marking of received mail (SPEC §3.6): headers only domsec may set are
// removed from every message, then domain-secured mail is marked as such. Pure, bytes in and out.
import type { DomainSecuredBy } from './message-sink.js';
import { canonicalName } from '../certificate-names.js';

/** What the Received: trace field says about the session (RFC 5321 §4.4). */
export interface ReceivedTrace {
  /** The EHLO/HELO name the client gave ("" when it gave none). */
  heloName: string;
  remoteAddress: string;
  /** "ESMTPS", "ESMTP", ... */
  protocol: string;
  id: string;
  tls?: { version: string; cipher: string } | null;
  date: Date;
}

export interface HeaderMarking {
  /** Our EHLO hostname: the authserv-id of our Authentication-Results. */
  hostname: string;
  domainSecured?: DomainSecuredBy;
  /** Whether the message arrived over TLS. */
  tls: boolean;
  /** When given, a Received: field is prepended as well. */
  received?: ReceivedTrace;
}

/**
 * The message with every incoming X-Domsec-* field and every Authentication-Results field whose
 * authserv-id is our hostname removed (folded lines included), and our marking prepended. The
 * body and all other fields are left byte for byte as they came.
 */
export function prepareHeaders(raw: Buffer, marking: HeaderMarking): Buffer {
  // latin1 maps bytes 1:1 to code units, so 8-bit headers survive the round trip. Only the header
  // section (up to and including its empty line) is decoded: the body is copied as bytes.
  const text = raw.subarray(0, headerSectionLength(raw)).toString('latin1');
  const { fields, bodyStart } = splitHeader(text);
  const newline = text.slice(0, bodyStart).includes('\r\n') || bodyStart === 0 ? '\r\n' : '\n';
  const ours = normalizeHost(marking.hostname);
  const kept = fields.filter((field) => !isForged(field, ours));
  const added = markingFields(marking).map((lines) => lines.join(`${newline}\t`) + newline);
  return Buffer.concat([
    Buffer.from(added.join('') + kept.join(''), 'latin1'),
    raw.subarray(bodyStart),
  ]);
}

/**
 * How many bytes hold the header section and the empty line that ends it (the whole message when
 * there is none): the first line, from the start or after an LF, that is CRLF or LF alone.
 */
function headerSectionLength(raw: Buffer): number {
  if (raw[0] === 0x0a) return 1;
  if (raw[0] === 0x0d && raw[1] === 0x0a) return 2;
  const crlf = raw.indexOf('\n\r\n');
  // An LF-only empty line can only come first if it is before the CRLF one: search no further.
  const lf = raw.subarray(0, crlf === -1 ? raw.length : crlf + 3).indexOf('\n\n');
  if (lf !== -1) return lf + 2;
  return crlf === -1 ? raw.length : crlf + 3;
}

/**
 * The header fields (each with its continuation lines and line ends) and the offset where the
 * body begins, at the first empty line. A line that is not a field does not end the header
 * section here: a lenient reader downstream might still take the fields below it as headers.
 */
export function splitHeader(text: string): { fields: string[]; bodyStart: number } {
  const fields: string[] = [];
  let position = 0;
  while (position < text.length) {
    const newline = text.indexOf('\n', position);
    const end = newline === -1 ? text.length : newline + 1;
    const line = text.slice(position, end);
    if (line === '\r\n' || line === '\n') return { fields, bodyStart: position };
    const continues = (line.startsWith(' ') || line.startsWith('\t')) && fields.length > 0;
    if (continues) fields[fields.length - 1] += line;
    else fields.push(line);
    position = end;
  }
  return { fields, bodyStart: text.length };
}

const FIELD_NAME = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/;

function isForged(field: string, ourHost: string): boolean {
  // Unfolded first: "X-Domsec-AuthAs\r\n : Partner" is that field to a lenient reader.
  const unfolded = field.replace(/\r?\n(?=[ \t])/g, '');
  const match = FIELD_NAME.exec(unfolded);
  if (match === null) return false;
  const name = (match[1] ?? '').toLowerCase();
  if (name.startsWith('x-domsec-')) return true;
  if (name !== 'authentication-results') return false;
  return authservId(unfolded.slice(match[0].length)) === ourHost;
}

/** RFC 8601 §2.2: the authserv-id is the first token of the value, before the first ";". */
function authservId(value: string): string {
  const unfolded = stripComments(value.replace(/\r?\n/g, ''));
  const first =
    unfolded
      .split(';')[0]
      ?.trim()
      .split(/[ \t]+/)[0] ?? '';
  const unquoted = /^"(.*)"$/.exec(first)?.[1]?.replace(/\\(.)/g, '$1') ?? first;
  return normalizeHost(unquoted);
}

/** Removes RFC 5322 comments (nested, with quoted-pairs) outside quoted strings. */
function stripComments(value: string): string {
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
  return out;
}

function normalizeHost(name: string): string {
  const lower = name.trim().toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Our fields, top first, each as the lines it is folded into. */
function markingFields(marking: HeaderMarking): string[][] {
  const fields: string[][] = [];
  const host = safeToken(marking.hostname);
  const secured = marking.domainSecured;
  if (secured !== undefined) {
    const partner = safeToken(canonicalName(secured.partner) || secured.partner);
    fields.push(['X-Domsec-AuthAs: Partner'], [`X-Domsec-Partner: ${partner}`]);
    fields.push([
      `Authentication-Results: ${host};`,
      `x-domsec=pass (mutual TLS) smtp.mailfrom=${partner}`,
      `x-domsec.subject=${quote(secured.certificateSubject)}`,
      `x-domsec.fingerprint=${quote(secured.certificateFingerprint)}`,
    ]);
  } else if (marking.tls) {
    fields.push([`Authentication-Results: ${host}; x-domsec=none`]);
  }
  if (marking.received !== undefined) fields.push(receivedLines(host, marking.received));
  return fields;
}

function receivedLines(host: string, trace: ReceivedTrace): string[] {
  const helo = trace.heloName === '' ? 'unknown' : safeToken(trace.heloName);
  const lines = [`Received: from ${helo} ([${safeToken(trace.remoteAddress)}])`];
  if (trace.tls) {
    lines.push(
      `(using ${safeToken(trace.tls.version)} with cipher ${safeToken(trace.tls.cipher)})`,
    );
  }
  lines.push(`by ${host} with ${safeToken(trace.protocol)} id ${safeToken(trace.id)};`);
  lines.push(rfc5322Date(trace.date));
  return lines;
}

/** "Tue, 25 Nov 2026 07:00:00 +0000" */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/ GMT$/, ' +0000');
}

/** Printable ASCII without the characters that would end a token, a comment or a field. */
function safeToken(value: string): string {
  return value.replace(/[^\x21-\x7e]|[()\\;"]/g, '_');
}

/** A quoted-string of printable ASCII: certificate subjects are chosen by whoever made them. */
function quote(value: string): string {
  const printable = value.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, '\\$&');
  return `"${printable}"`;
}
