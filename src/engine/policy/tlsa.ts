// DANE for SMTP (RFC 7672, with RFC 7671's operational rules): which TLSA records are usable, and
// whether a server's certificate chain matches them. Pure: the records come from a DNSSEC-secure
// answer (policy/dane.ts decides that), the chain from the TLS socket.
import { createHash, type X509Certificate } from 'node:crypto';
import { certificateDnsNames, coversHost } from '../../certificate-names.js';

export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  data: Buffer;
}

/** Certificate usages (RFC 6698 §2.1.1). */
export const DANE_TA = 2;
export const DANE_EE = 3;

/** The digest length each matching type needs; full (0) takes any non-empty data. */
const DIGEST_LENGTH: Record<number, number> = { 1: 32, 2: 64 };

/**
 * Why a record cannot be used, or undefined when it can. RFC 7672 §3.1.3: PKIX-TA(0) and
 * PKIX-EE(1) are not for SMTP (MX hosts have no agreed CA list); unknown usages, selectors and
 * matching types, and digests of the wrong length, are unusable too.
 */
export function unusableReason(record: TlsaRecord): string | undefined {
  if (record.usage === 0 || record.usage === 1)
    return `usage ${record.usage} (PKIX) is not used for SMTP`;
  if (record.usage !== DANE_TA && record.usage !== DANE_EE) return `unknown usage ${record.usage}`;
  if (record.selector !== 0 && record.selector !== 1) return `unknown selector ${record.selector}`;
  if (record.matchingType < 0 || record.matchingType > 2)
    return `unknown matching type ${record.matchingType}`;
  const length = DIGEST_LENGTH[record.matchingType];
  if (length !== undefined && record.data.length !== length)
    return `matching type ${record.matchingType} needs ${length} bytes, the record has ${record.data.length}`;
  if (record.data.length === 0) return 'empty association data';
  return undefined;
}

export function usableRecords(records: readonly TlsaRecord[]): TlsaRecord[] {
  return records.filter((record) => unusableReason(record) === undefined);
}

/** The bytes a selector picks from a certificate: the whole DER (0) or its SubjectPublicKeyInfo (1). */
function selected(cert: X509Certificate, selector: number): Buffer {
  return selector === 0 ? cert.raw : cert.publicKey.export({ type: 'spki', format: 'der' });
}

/** Whether the record's association data is this certificate's (by its selector and matching type). */
export function recordMatches(record: TlsaRecord, cert: X509Certificate): boolean {
  const bytes = selected(cert, record.selector);
  const wanted =
    record.matchingType === 0
      ? bytes
      : createHash(record.matchingType === 1 ? 'sha256' : 'sha512')
          .update(bytes)
          .digest();
  return wanted.length === record.data.length && wanted.equals(record.data);
}

/** "3 1 1 ab12cd..": how a record is written in a zone, its data shortened for messages. */
export function describeRecord(record: TlsaRecord): string {
  const hex = record.data.toString('hex');
  const shown = hex.length > 16 ? `${hex.slice(0, 16)}...` : hex;
  return `${record.usage} ${record.selector} ${record.matchingType} ${shown}`;
}

export type DaneVerdict =
  { ok: true; record: TlsaRecord; how: string } | { ok: false; reason: string };

export interface DaneCheck {
  /** Usable records only (usableRecords); an empty list is the caller's "no DANE". */
  records: readonly TlsaRecord[];
  /** The server's chain as sent, leaf first. */
  chain: readonly X509Certificate[];
  /**
   * DANE-TA's reference identifiers (RFC 7672 §3.2.2): the MX host name, and the next-hop domain
   * when the MX host is reached through it. DANE-EE checks no name.
   */
  names: readonly string[];
  now?: Date;
}

/**
 * RFC 7672 §3.1: DANE-EE(3) matches the leaf alone, with no name or expiry check; DANE-TA(2)
 * matches a certificate of the chain that then must be the issuer the leaf chains up to (each
 * signature checked, each certificate below it in date), and the leaf must name the host.
 */
export function matchChain(check: DaneCheck): DaneVerdict {
  const { records, chain, names } = check;
  const leaf = chain[0];
  if (leaf === undefined) return { ok: false, reason: 'the server sent no certificate' };
  const now = check.now ?? new Date();
  const problems: string[] = [];
  for (const record of records) {
    if (record.usage === DANE_EE && recordMatches(record, leaf))
      return { ok: true, record, how: 'DANE-EE matched the server certificate' };
  }
  for (const record of records) {
    if (record.usage !== DANE_TA) continue;
    // The trust anchor is a certificate the server sends (RFC 7672 §3.1.2 asks servers to send it).
    const index = chain.findIndex((cert, i) => i > 0 && recordMatches(record, cert));
    if (index === -1) continue;
    const broken = brokenLink(chain.slice(0, index + 1), now);
    if (broken !== undefined) {
      problems.push(`DANE-TA ${describeRecord(record)} matched, but ${broken}`);
      continue;
    }
    const certNames = certificateDnsNames(leaf);
    if (!names.some((name) => coversHost(certNames, name))) {
      problems.push(
        `DANE-TA ${describeRecord(record)} matched, but the certificate names ${certNames.join(', ') || 'nothing'}, not ${names.join(' or ')}`,
      );
      continue;
    }
    return {
      ok: true,
      record,
      how: `DANE-TA matched ${chain[index]?.subject.replace(/\n/g, ', ') ?? ''}`,
    };
  }
  const tried = records.map(describeRecord).join(', ');
  return {
    ok: false,
    reason:
      problems.length > 0
        ? problems.join('; ')
        : `no TLSA record matched the server certificate (records: ${tried})`,
  };
}

/** Why the path from the leaf up to the last element is not a chain, or undefined when it is. */
function brokenLink(path: readonly X509Certificate[], now: Date): string | undefined {
  for (let i = 0; i + 1 < path.length; i += 1) {
    const cert = path[i];
    const issuer = path[i + 1];
    if (cert === undefined || issuer === undefined) return 'the chain is incomplete';
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey))
      return `${cert.subject.replace(/\n/g, ', ')} is not signed by the next certificate`;
    if (new Date(cert.validFrom) > now || new Date(cert.validTo) < now)
      return `${cert.subject.replace(/\n/g, ', ')} is outside its validity`;
  }
  for (const cert of path.slice(1))
    if (!cert.ca) return `${cert.subject.replace(/\n/g, ', ')} is not a CA`;
  return undefined;
}
