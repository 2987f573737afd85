// Certificate names: which DNS names a certificate carries, whether they cover a host,
// and whether they name a partner domain. Pure functions shared by validate (DS005) and the
// engine (receive, send), so both read a certificate the same way.
import type { X509Certificate } from 'node:crypto';
import { domainToUnicode } from 'node:url';
import { domainName } from './domain-name.js';
import type { CertificateNameMatch } from './model.js';

/** SAN dNSName entries, or the subject CN only when the certificate has no SAN dNSName. */
export function certificateDnsNames(cert: X509Certificate): string[] {
  const names = subjectAltDnsNames(cert);
  if (names.length > 0) return names;
  const cn = cert.subject
    .split('\n')
    .map((line) => /^CN=(.*)$/.exec(line)?.[1])
    .filter((value): value is string => value !== undefined);
  return cn;
}

/**
 * A name or a one-label wildcard ("*.example.com") in canonical form (see domain-name.ts); ""
 * when it is not one.
 */
export function canonicalName(name: string): string {
  if (name.startsWith('*.')) {
    const rest = domainName(name.slice(2));
    return rest === undefined ? '' : `*.${rest}`;
  }
  return domainName(name) ?? '';
}

/**
 * A name read from a certificate in canonical form, or "" when the certificate does not spell a
 * host name. domainToASCII forgives what a URL may carry (percent-escapes: "%61datum.com" is
 * adatum.com; full-width letters and zero-width characters that UTS 46 maps or drops); a
 * certificate's name must already be written as the name it is compared with, up to case, one
 * trailing dot and U-labels for A-labels.
 */
export function canonicalCertificateName(raw: string): string {
  const name = canonicalName(raw);
  if (name === '') return '';
  // eslint-disable-next-line no-restricted-syntax -- the name as the certificate writes it, compared with its canonical form
  const written = (raw.endsWith('.') ? raw.slice(0, -1) : raw).toLowerCase().normalize('NFC');
  // eslint-disable-next-line no-control-regex -- the test is for ASCII, control characters included
  if (/^[\u0000-\u007f]*$/.test(written)) {
    return /^[a-z0-9_.*-]+$/.test(written) && written === name ? name : '';
  }
  return domainToUnicode(name) === written ? name : '';
}

export interface PartnerNaming {
  domain: string;
  certificateNames: readonly string[];
  certificateNameMatch: CertificateNameMatch;
}

/**
 * Whether one of the certificate's DNS names names the partner. By default the partner's domain
 * itself or a name listed in certificateNames (exact, or a one-label wildcard that then matches
 * one whole left-most label); with "subdomain" also a host one label below the domain or the
 * wildcard *.domain, which is what Exchange accepts.
 */
export function namesPartner(certificateNames: readonly string[], partner: PartnerNaming): boolean {
  const domain = canonicalName(partner.domain);
  if (domain === '') return false;
  const expected = partner.certificateNames.map(canonicalName).filter((n) => n !== '');
  for (const raw of certificateNames) {
    const name = canonicalCertificateName(raw);
    if (name === '') continue;
    if (name === domain) return true;
    for (const wanted of expected) {
      if (name === wanted) return true;
      // A listed wildcard admits a certificate name one label below it.
      if (wanted.startsWith('*.') && !name.startsWith('*.') && oneLabelBelow(name, wanted.slice(2)))
        return true;
    }
    if (partner.certificateNameMatch === 'subdomain') {
      if (name === `*.${domain}`) return true;
      if (!name.startsWith('*') && oneLabelBelow(name, domain)) return true;
    }
  }
  return false;
}

function oneLabelBelow(name: string, parent: string): boolean {
  if (!name.endsWith(`.${parent}`)) return false;
  const label = name.slice(0, -(parent.length + 1));
  return label.length > 0 && !label.includes('.') && !label.includes('*');
}

/**
 * Whether one of the certificate's names covers the host (RFC 6125 §6.4): a name equal to it, or
 * a wildcard "*.parent" standing for exactly its whole left-most label, where the parent has two
 * labels at least ("*.com" covers nothing). A partial wildcard ("f*.adatum.com"), one that is not
 * the left-most label, and a name the certificate spells loosely (canonicalCertificateName) cover
 * nothing; a host that is not a domain name (an IP literal, a wildcard, "") is covered by nothing.
 * The one rule for validate (the organization certificate), receive (the EHLO name) and send.
 */
export function coversHost(certificateNames: readonly string[], host: string): boolean {
  const wanted = domainName(host);
  if (wanted === undefined) return false;
  const parent = wanted.slice(wanted.indexOf('.') + 1);
  const wildcard = wanted.includes('.') && parent.includes('.') ? `*.${parent}` : undefined;
  return certificateNames.some((raw) => {
    const name = canonicalCertificateName(raw);
    return name !== '' && (name === wanted || name === wildcard);
  });
}

/** A name equal to the domain itself: what partners check by default. */
export function namesDomain(certificateNames: readonly string[], domain: string): boolean {
  const wanted = canonicalName(domain);
  return wanted !== '' && certificateNames.map(canonicalCertificateName).includes(wanted);
}

/**
 * SAN dNSName entries only: the DNS-IDs of RFC 9525, with no fall back to the subject CN (for
 * MTA-STS, which asks for a DNS-ID).
 */
export function subjectAltDnsNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (san === undefined) return [];
  // Node prints "DNS:a, DNS:b, IP Address:1.2.3.4"; dNSName values cannot hold ", ".
  return san
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4));
}
