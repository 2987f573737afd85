// Which DNS names a certificate carries and whether they cover a host or name a domain (SPEC §5),
// for the organization-certificate rules. The engine has its own copy of these few lines: config
// may not import the engine, and the engine may not import config.
import type { X509Certificate } from 'node:crypto';
import { domainToASCII } from 'node:url';

/** SAN dNSName entries, or the subject CN only when the certificate has no SAN dNSName. */
export function certificateDnsNames(certificate: X509Certificate): string[] {
  const san = certificate.subjectAltName;
  if (san !== undefined) {
    // Node prints "DNS:a, DNS:b, IP Address:1.2.3.4"; dNSName values cannot hold ", ".
    const names = san
      .split(', ')
      .filter((entry) => entry.startsWith('DNS:'))
      .map((entry) => entry.slice(4));
    if (names.length > 0) return names;
  }
  return certificate.subject
    .split('\n')
    .map((line) => /^CN=(.*)$/.exec(line)?.[1])
    .filter((value): value is string => value !== undefined);
}

/** Lower case, one trailing dot dropped, IDNs as A-labels; "" when it is not a domain name. */
export function canonicalName(name: string): string {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  if (trimmed.startsWith('*.')) {
    const rest = domainToASCII(trimmed.slice(2).toLowerCase());
    return rest === '' ? '' : `*.${rest}`;
  }
  return domainToASCII(trimmed.toLowerCase());
}

/** A name equal to the host, or a wildcard standing for exactly its left-most label. */
export function coversHost(certificateNames: readonly string[], host: string): boolean {
  const wanted = canonicalName(host);
  if (wanted === '') return false;
  const dot = wanted.indexOf('.');
  const wildcard = dot > 0 ? `*${wanted.slice(dot)}` : undefined;
  return certificateNames.map(canonicalName).some((name) => name === wanted || name === wildcard);
}

/** A name equal to the domain itself: what partners check by default (SPEC §5). */
export function namesDomain(certificateNames: readonly string[], domain: string): boolean {
  const wanted = canonicalName(domain);
  return wanted !== '' && certificateNames.map(canonicalName).includes(wanted);
}
