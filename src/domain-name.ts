// One canonical form for every domain name inside domsec: UTS #46 (IDNA2008, non-transitional)
// mapped to A-labels, lower case, no trailing dot. Made once where a name comes in (SMTP MAIL and
// RCPT, manifests, the admin API, DNS answers, CLI arguments); every index and key uses it, so
// "ADATUM.com.", "ａｄａｔｕｍ.com" and an IDN's U-label reach the same partner, policy and mailbox.
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';

declare const canonical: unique symbol;
/** A domain (or host) name in canonical form; only parseDomainName() makes one. */
export type DomainName = string & { readonly [canonical]: true };

/** Shared between callers (parseDomainName remembers recent names): never changed. */
export type DomainNameResult =
  | { readonly ok: true; readonly name: DomainName }
  | { readonly ok: false; readonly reason: string };

/** RFC 1035 §2.3.4 / RFC 5321 §4.5.3.1.2. */
const MAX_NAME_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;
/**
 * Characters the URL host parser behind domainToASCII treats as delimiters or escapes ("a.com/x"
 * would become a.com, "%61.com" a.com): a name that holds one is not a name, whatever it maps to.
 * White space and control characters are refused the same way.
 */
// eslint-disable-next-line no-control-regex -- control characters are what this refuses
const FORBIDDEN = /[\u0000-\u0020\u007f-\u009f/?#%@:[\]\\^|<>"'`{}]/;
/** Letters, digits and hyphens; no hyphen at either end (RFC 5321's sub-domain). */
const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const NUMERIC = /^[0-9]+$/;

/**
 * The canonical form of a domain written as anything UTS #46 maps (A-labels, U-labels, either
 * case, full-width and other compatibility forms, one trailing dot), or why it is not a domain.
 * IP addresses and address literals are not domains.
 */
export function parseDomainName(raw: string): DomainNameResult {
  let result = recent.get(raw);
  if (result === undefined) {
    result = parse(raw);
    // A pure function of its input: the few names a node sees all day are mapped once.
    if (recent.size >= MAX_RECENT) recent.clear();
    recent.set(raw, result);
  }
  return result;
}

const recent = new Map<string, DomainNameResult>();
/** Mapping a name costs about 1.5 µs, and a message asks for several (MAIL, RCPT, queue, mailbox). */
const MAX_RECENT = 4096;

function parse(raw: string): DomainNameResult {
  if (raw === '') return { ok: false, reason: 'the name is empty' };
  if (raw.length > 4 * MAX_NAME_LENGTH) return { ok: false, reason: 'the name is too long' };
  const forbidden = FORBIDDEN.exec(raw);
  if (forbidden !== null) {
    return { ok: false, reason: `the name holds ${describeCharacter(forbidden[0])}` };
  }
  if (isIP(raw) !== 0) return { ok: false, reason: 'an IP address is not a domain name' };
  const mapped = domainToASCII(raw);
  if (mapped === '')
    return { ok: false, reason: 'the name does not map to IDNA A-labels (UTS #46)' };
  const name = mapped.endsWith('.') ? mapped.slice(0, -1) : mapped;
  if (name.length > MAX_NAME_LENGTH) {
    return { ok: false, reason: `the name is longer than ${MAX_NAME_LENGTH} characters` };
  }
  const labels = name.split('.');
  for (const label of labels) {
    if (label === '') return { ok: false, reason: 'the name has an empty label' };
    if (label.length > MAX_LABEL_LENGTH) {
      return { ok: false, reason: `a label is longer than ${MAX_LABEL_LENGTH} characters` };
    }
    if (!LDH_LABEL.test(label)) {
      return { ok: false, reason: `the label ${label} is not letters, digits and inner hyphens` };
    }
  }
  // WHATWG host parsing reads a numeric last label as an IPv4 address ("1.2.3.4", "a.0x7f").
  if (NUMERIC.test(labels[labels.length - 1] ?? '')) {
    return { ok: false, reason: 'the last label is numeric' };
  }
  // Each A-label must come back from its U-label unchanged: domainToASCII checked the Punycode.
  return { ok: true, name: name as DomainName };
}

/** The canonical form, or undefined when the text is not a domain name. */
export function domainName(raw: string): DomainName | undefined {
  const result = parseDomainName(raw);
  return result.ok ? result.name : undefined;
}

/** Whether the text is already a domain name in canonical form. */
export function isCanonicalDomainName(text: string): text is DomainName {
  return domainName(text) === text;
}

/** An envelope address split at its last "@", the domain in canonical form. */
export interface CanonicalAddress {
  localPart: string;
  domain: DomainName;
  /** localPart@domain: the spelling every queue record, index and log uses. */
  address: string;
}

export type AddressResult =
  | { ok: true; address: CanonicalAddress }
  | { ok: false; reason: string }
  /** An address literal ("user@[192.0.2.1]") or no domain at all: there is no name to canonicalise. */
  | { ok: true; address: undefined };

/**
 * An envelope address with its domain made canonical. smtp-server hands recipient domains over as
 * U-labels; queue and routing must see the one spelling. Address literals are kept as given.
 */
export function parseAddress(raw: string): AddressResult {
  const at = raw.lastIndexOf('@');
  if (at < 0) return { ok: true, address: undefined };
  const domainPart = raw.slice(at + 1);
  if (domainPart.startsWith('[')) return { ok: true, address: undefined };
  const parsed = parseDomainName(domainPart);
  if (!parsed.ok) return parsed;
  const localPart = raw.slice(0, at);
  return {
    ok: true,
    address: { localPart, domain: parsed.name, address: `${localPart}@${parsed.name}` },
  };
}

/** The canonical domain of an address; undefined for the null sender, a literal or a non-name. */
export function addressDomain(address: string): DomainName | undefined {
  const parsed = parseAddress(address);
  return parsed.ok ? parsed.address?.domain : undefined;
}

function describeCharacter(character: string): string {
  const code = character.codePointAt(0) ?? 0;
  if (code <= 0x20 || (code >= 0x7f && code <= 0x9f)) {
    return `the control or space character U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  return `the character ${JSON.stringify(character)}`;
}

/** The canonical form of a name known to be one (tests, constants); RangeError otherwise. */
export function requireDomainName(raw: string): DomainName {
  const parsed = parseDomainName(raw);
  if (!parsed.ok)
    throw new RangeError(`${JSON.stringify(raw)} is not a domain name: ${parsed.reason}`);
  return parsed.name;
}
