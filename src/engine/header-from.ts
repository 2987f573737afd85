// The domain of a message's author (RFC 5322 §3.6.2 From:), for `header.from` in our
// Authentication-Results (RFC 8601 §2.3) and for rules that compare it with the partner's domain.
import { canonicalName } from '../certificate-names.js';
import { withoutComments, type HeaderField } from './message-reading.js';

/**
 * The From: domain in canonical form when the message has exactly one From: field holding exactly
 * one mailbox whose domain is a host name; undefined otherwise (no From:, several, a group, a list,
 * an address literal, a domain that does not map), so that a caller comparing it fails closed.
 */
export function headerFromDomain(fields: readonly HeaderField[]): string | undefined {
  // eslint-disable-next-line no-restricted-syntax -- a header field name
  const from = fields.filter((field) => field.name.toLowerCase() === 'from');
  const only = from.length === 1 ? from[0] : undefined;
  if (only === undefined) return undefined;
  const value = withoutComments(only.text.slice(only.name.length + 1).replace(/\r\n/g, ''));
  if (value === undefined) return undefined;
  const address = addressSpec(value);
  if (address === undefined) return undefined;
  const at = lastUnquoted(address, '@');
  if (at <= 0) return undefined;
  const domain = address.slice(at + 1).trim();
  if (!/^[^\s[\]"\\@*]+$/.test(domain)) return undefined;
  // 8-bit bytes are UTF-8 (RFC 6532) read as latin1; canonicalName maps U-labels to A-labels.
  return canonicalName(Buffer.from(domain, 'latin1').toString('utf8')) || undefined;
}

/**
 * The addr-spec of a value holding one mailbox: `addr-spec` or `[display-name] <addr-spec>`.
 * undefined for a list (a comma outside quotes), a group (a colon), or stray angle brackets.
 */
function addressSpec(value: string): string | undefined {
  const parts = { comma: -1, colon: -1, open: -1, close: -1, opens: 0, closes: 0 };
  let quoted = false;
  for (let i = 0; i < value.length; i += 1) {
    const char = value[i];
    if (char === '\\') i += 1;
    else if (char === '"') quoted = !quoted;
    else if (quoted) continue;
    else if (char === ',') parts.comma = i;
    else if (char === ':') parts.colon = i;
    else if (char === '<') [parts.open, parts.opens] = [i, parts.opens + 1];
    else if (char === '>') [parts.close, parts.closes] = [i, parts.closes + 1];
  }
  if (quoted || parts.comma !== -1 || parts.colon !== -1) return undefined;
  if (parts.opens === 0 && parts.closes === 0) return value.trim();
  if (parts.opens !== 1 || parts.closes !== 1 || parts.close < parts.open) return undefined;
  if (value.slice(parts.close + 1).trim() !== '') return undefined;
  return value.slice(parts.open + 1, parts.close).trim();
}

/** The last index of a character outside quoted strings, -1 when there is none. */
function lastUnquoted(text: string, wanted: string): number {
  let found = -1;
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i];
    if (char === '\\') i += 1;
    else if (char === '"') quoted = !quoted;
    else if (!quoted && char === wanted) found = i;
  }
  return found;
}
