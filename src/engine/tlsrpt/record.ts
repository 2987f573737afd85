// The `_smtp._tls.<domain>` TXT record of SMTP TLS reporting (RFC 8460 §3), parsed strictly:
// `v=TLSRPTv1` first, exactly one `rua=` with mailto: and https: URIs, extensions by the RFC's
// grammar, nothing else. A domain with no such record, or more than one, gets no report. A look-up
// that fails (SERVFAIL, timeout) is not "no record": the caller keeps the report and tries again.
import { isIP } from 'node:net';
import { parseAddress, type DomainName } from '../../domain-name.js';
import { DnsLookupError, type PolicyResolver } from '../policy/resolver.js';

export type ReportUri =
  { kind: 'mailto'; address: string; uri: string } | { kind: 'https'; url: URL; uri: string };

export type TlsRptRecordResult = { ok: true; rua: ReportUri[] } | { ok: false; reason: string };

/** Longer records than this are refused (a DNS TXT answer of sane size). */
export const MAX_RECORD_LENGTH = 2_048;
/** At most this many report URIs; more is refused rather than mailed to in bulk. */
export const MAX_RUA = 8;

const VERSION = 'v=TLSRPTv1';
const EXTENSION_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
// %x21-3A / %x3C / %x3E-7E: printable ASCII without ';' and '='.
const EXTENSION_VALUE = /^[\x21-\x3a\x3c\x3e-\x7e]+$/;
const WSP = /^[ \t]*|[ \t]*$/g;

/** One TXT record's text (its strings joined). */
export function parseTlsRptRecord(text: string): TlsRptRecordResult {
  if (text.length > MAX_RECORD_LENGTH)
    return { ok: false, reason: `longer than ${MAX_RECORD_LENGTH} characters` };
  // Printable ASCII and WSP only: URIs carry anything else percent-encoded.
  if (!/^[\x20-\x7e\t]*$/.test(text))
    return { ok: false, reason: 'holds a byte that is not printable ASCII' };
  const fields = text.split(';').map((field) => field.replace(WSP, ''));
  if (fields[0] !== VERSION) return { ok: false, reason: `does not begin with ${VERSION}` };
  // One trailing delimiter is allowed; an empty field elsewhere is not.
  if (fields.length > 1 && fields[fields.length - 1] === '') fields.pop();
  let rua: ReportUri[] | undefined;
  for (const field of fields.slice(1)) {
    const equals = field.indexOf('=');
    if (equals <= 0)
      return { ok: false, reason: `the field ${JSON.stringify(field)} is not name=value` };
    const name = field.slice(0, equals);
    const value = field.slice(equals + 1);
    if (name === 'rua') {
      if (rua !== undefined) return { ok: false, reason: 'rua is given more than once' };
      const parsed = parseRua(value);
      if (!parsed.ok) return parsed;
      rua = parsed.rua;
      continue;
    }
    if (name === 'v') return { ok: false, reason: 'v is given more than once' };
    if (!EXTENSION_NAME.test(name))
      return { ok: false, reason: `${JSON.stringify(name)} is not an extension name` };
    if (!EXTENSION_VALUE.test(value))
      return { ok: false, reason: `the value of ${name} is not an extension value` };
  }
  if (rua === undefined) return { ok: false, reason: 'has no rua' };
  return { ok: true, rua };
}

function parseRua(value: string): TlsRptRecordResult {
  const uris = value.split(',').map((uri) => uri.replace(WSP, ''));
  if (uris.length > MAX_RUA) return { ok: false, reason: `rua names more than ${MAX_RUA} URIs` };
  const rua: ReportUri[] = [];
  for (const uri of uris) {
    const parsed = parseReportUri(uri);
    if (!parsed.ok) return parsed;
    if (!rua.some((known) => known.uri === parsed.uri.uri)) rua.push(parsed.uri);
  }
  return { ok: true, rua };
}

function parseReportUri(uri: string): { ok: true; uri: ReportUri } | { ok: false; reason: string } {
  const refuse = (why: string) => ({
    ok: false as const,
    reason: `rua ${JSON.stringify(uri)}: ${why}`,
  });
  if (uri === '') return refuse('is empty');
  if (/[\s"<>\\^`{|}]/.test(uri)) return refuse('holds a character a URI may not');
  const colon = uri.indexOf(':');
  const scheme = colon < 0 ? '' : uri.slice(0, colon);
  if (scheme === 'mailto') {
    const rest = uri.slice(colon + 1);
    // One address, no header fields (?subject=...): a report goes to an address, nothing more.
    if (/[?#,]/.test(rest)) return refuse('a mailto: URI here is one address only');
    let address: string;
    try {
      address = decodeURIComponent(rest);
    } catch {
      return refuse('bad percent-encoding');
    }
    if (!/^[\x21-\x7e]+$/.test(address)) return refuse('the address is not printable ASCII');
    const at = address.lastIndexOf('@');
    if (at <= 0 || address.slice(0, at).includes('@')) return refuse('is not local-part@domain');
    if (address.slice(0, at).length > 64) return refuse('the local part is longer than 64');
    const parsed = parseAddress(address);
    if (!parsed.ok || parsed.address === undefined)
      return refuse('the domain is not a domain name');
    // One label (localhost, intranet) is a name of our own network, never another domain's collector.
    if (!parsed.address.domain.includes('.')) return refuse('the domain is a single label');
    return { ok: true, uri: { kind: 'mailto', address: parsed.address.address, uri } };
  }
  if (scheme === 'https') {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      return refuse('is not a URL');
    }
    if (url.protocol !== 'https:' || url.hostname === '') return refuse('is not an https URL');
    if (url.username !== '' || url.password !== '') return refuse('carries credentials');
    // A name, not an address: a record cannot point our POST at an address of its choosing.
    if (isIP(url.hostname.replace(/^\[|\]$/g, '')) !== 0)
      return refuse('names an IP address, not a host');
    return { ok: true, uri: { kind: 'https', url, uri } };
  }
  return refuse('is neither mailto: nor https:');
}

export type TlsRptLookup =
  | { kind: 'record'; rua: ReportUri[] }
  /** No usable record: nothing is reported, and that is not an error. */
  | { kind: 'none'; why: string };

/**
 * The domain's TLSRPT policy (RFC 8460 §3): TXT records that do not begin with `v=TLSRPTv1;` are
 * left out; unless exactly one is left, the domain does not report. Throws DnsLookupError when the
 * look-up gave no answer: the caller must not read that as "no record".
 */
export async function lookupTlsRpt(
  resolver: PolicyResolver,
  domain: DomainName,
): Promise<TlsRptLookup> {
  const answer = await resolver.txt(`_smtp._tls.${domain}`);
  if (answer.status !== 'answer')
    return { kind: 'none', why: `_smtp._tls.${domain} has no TXT record` };
  const candidates = answer.records.filter((text) => /^v=TLSRPTv1[ \t]*(;|$)/.test(text));
  if (candidates.length === 0)
    return { kind: 'none', why: `no TXT record of _smtp._tls.${domain} is TLSRPTv1` };
  if (candidates.length > 1)
    return {
      kind: 'none',
      why: `_smtp._tls.${domain} has ${candidates.length} TLSRPTv1 records (one is allowed)`,
    };
  const parsed = parseTlsRptRecord(candidates[0] ?? '');
  if (!parsed.ok) return { kind: 'none', why: `the TLSRPT record of ${domain} ${parsed.reason}` };
  return { kind: 'record', rua: parsed.rua };
}

export { DnsLookupError };
