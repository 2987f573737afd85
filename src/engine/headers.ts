// The header firewall and marking of received mail: on the one reading of the message
// (message-reading.ts), headers only domsec may set are removed from every message, then
// domain-secured mail is marked as such. Pure, bytes in and out.
import { canonicalName } from '../certificate-names.js';
import { headerFromDomain } from './header-from.js';
import type { DomainSecuredBy } from './message-sink.js';
import {
  readMessage,
  withoutComments,
  type HeaderField,
  type MalformedMessage,
} from './message-reading.js';
import { REPLIES, SmtpReplyError } from './replies.js';

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

/** A message ready to store, and whether it left the marking step domain-secured. */
export interface PreparedMessage {
  body: Buffer;
  /** The session's verdict, unless the partner's requireHeaderFromDomain withdrew it. */
  domainSecured?: DomainSecuredBy;
}

/**
 * The message read one way (message-reading.ts) with every incoming X-Domsec-* field and every
 * (ARC-)Authentication-Results field carrying our authserv-id removed, and our marking prepended;
 * or why it is refused. What it returns is the only form of the message stored and relayed.
 */
export function prepareReceived(
  raw: Buffer,
  marking: HeaderMarking,
): PreparedMessage | MalformedMessage {
  const reading = readMessage(raw);
  if ('malformed' in reading) return reading;
  const kept = firewall(reading.fields, marking.hostname);
  if ('malformed' in kept) return kept;
  const secured = marking.domainSecured;
  const headerFrom = secured === undefined ? undefined : headerFromDomain(kept);
  // A partner that asks for it is credited only with mail whose author is in its own domain.
  const authorMatches =
    secured?.requireHeaderFromDomain !== true || headerFrom === canonicalName(secured.partner);
  const added = markingFields(marking, headerFrom, authorMatches).map(
    (lines) => lines.join('\r\n\t') + '\r\n',
  );
  // latin1 maps bytes 1:1 to code units, so 8-bit headers survive the round trip.
  const header = Buffer.from(added.join('') + kept.map((field) => field.text).join(''), 'latin1');
  const body = reading.rest.length === 0 ? header : Buffer.concat([header, reading.rest]);
  return secured !== undefined && authorMatches ? { body, domainSecured: secured } : { body };
}

/** prepareReceived's message alone, or why it is refused. */
export function prepareMessage(raw: Buffer, marking: HeaderMarking): Buffer | MalformedMessage {
  const prepared = prepareReceived(raw, marking);
  return 'malformed' in prepared ? prepared : prepared.body;
}

/** prepareMessage for a message known to be well formed: throws the 550 5.6.0 refusal otherwise. */
export function prepareHeaders(raw: Buffer, marking: HeaderMarking): Buffer {
  const prepared = prepareMessage(raw, marking);
  if (Buffer.isBuffer(prepared)) return prepared;
  throw new SmtpReplyError(REPLIES.malformedHeader, prepared.malformed);
}

/**
 * The fields kept: all but those only domsec may set. A field with white space before its colon
 * is removed when it is one of those, and refuses the message otherwise (message-reading.ts).
 */
export function firewall(
  fields: readonly HeaderField[],
  ourHost: string,
): HeaderField[] | MalformedMessage {
  const kept: HeaderField[] = [];
  for (const field of fields) {
    if (field.spaced && !isOwnedName(field.name)) {
      return {
        malformed: `line ${field.line} of the header section has white space before the colon`,
      };
    }
    if (!field.spaced && !isForged(field, ourHost)) kept.push(field);
  }
  return kept;
}

/** Names of fields that domsec sets or may have to remove. */
function isOwnedName(written: string): boolean {
  // eslint-disable-next-line no-restricted-syntax -- a header field name
  const name = written.toLowerCase();
  return (
    name === 'x-domsec' ||
    name.startsWith('x-domsec-') ||
    name === 'authentication-results' ||
    name === 'arc-authentication-results'
  );
}

/** The fields only domsec may set: X-Domsec-*, and results that claim to be ours. */
export function isForged(field: HeaderField, ourHost: string): boolean {
  if (!isOwnedName(field.name)) return false;
  // eslint-disable-next-line no-restricted-syntax -- a header field name
  const name = field.name.toLowerCase();
  if (name === 'x-domsec' || name.startsWith('x-domsec-')) return true;
  const value = withoutComments(field.text.slice(field.name.length + 1).replace(/\r\n/g, ''));
  // Results whose authserv-id cannot be read go too: a lenient reader may still see ours in them.
  if (value === undefined) return true;
  const id = authservId(value);
  return id === undefined || sameHost(id, ourHost);
}

/**
 * RFC 8601 §2.2: the authserv-id is the first item of the value, before the first ";"; in
 * ARC-Authentication-Results it follows the instance tag "i=N;" (RFC 8617 §4.1.1). A tag is
 * skipped in either field: a reader that confuses the two must not find ours behind it.
 * undefined when there is no item at all. Comments are already removed.
 */
function authservId(value: string): string | undefined {
  const untagged = value.replace(/^[ \t]*i[ \t]*=[ \t]*[0-9]+[ \t]*;/i, '');
  const item = /^[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^ \t;"]+))/.exec(untagged);
  if (item === null) return undefined;
  return item[1] === undefined ? (item[2] ?? '') : item[1].replace(/\\(.)/g, '$1').trim();
}

/** Host names compared in canonical form: lower case, one trailing dot dropped, A-labels. */
function sameHost(written: string, ourHost: string): boolean {
  // 8-bit bytes are UTF-8 read as latin1: a U-label of our name is our name.
  const name = canonicalName(Buffer.from(written, 'latin1').toString('utf8'));
  return name !== '' && name === canonicalHost(ourHost);
}

/** canonicalName of our hostname, kept for the next message: it changes only with a reload. */
let lastHost = { written: '', canonical: '' };
function canonicalHost(written: string): string {
  if (lastHost.written !== written) lastHost = { written, canonical: canonicalName(written) };
  return lastHost.canonical;
}

/** Our fields, top first, each as the lines it is folded into. */
function markingFields(
  marking: HeaderMarking,
  headerFrom: string | undefined,
  authorMatches: boolean,
): string[][] {
  const fields: string[][] = [];
  const host = safeToken(marking.hostname);
  const secured = marking.domainSecured;
  if (secured !== undefined && !authorMatches) {
    const partner = safeToken(canonicalName(secured.partner) || secured.partner);
    fields.push([
      `Authentication-Results: ${host};`,
      `x-domsec=fail (header.from is not the partner's domain) smtp.mailfrom=${partner}`,
      `header.from=${headerFrom === undefined ? 'unknown' : safeToken(headerFrom)}`,
    ]);
  } else if (secured !== undefined) {
    const partner = safeToken(canonicalName(secured.partner) || secured.partner);
    fields.push(['X-Domsec-AuthAs: Partner'], [`X-Domsec-Partner: ${partner}`]);
    fields.push([
      `Authentication-Results: ${host};`,
      `x-domsec=pass (mutual TLS) smtp.mailfrom=${partner}`,
      // RFC 8601 ptype header, property from: the author's domain, when it has exactly one.
      ...(headerFrom === undefined ? [] : [`header.from=${safeToken(headerFrom)}`]),
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
