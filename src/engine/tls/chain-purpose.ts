// Whether a verified path may serve the TLS role its peer played: everything OpenSSL's one
// "unsuitable certificate purpose" code (waived for clients) can stand for, checked on every path
// ourselves. The anchor counts like any CA on the path: `openssl verify` checks it too.
import type { X509Certificate } from 'node:crypto';
import { certificateExtensions, type CertificateExtensions } from './certificate-extensions.js';
import { nameConstraintsProblem } from './name-constraints.js';

export interface PurposeRule {
  /** The role the peer played. */
  role: 'client' | 'server';
  /** clientCertificatePurpose: strict (a client must show clientAuth). */
  strict: boolean;
}

type TlsPurpose = 'serverAuth' | 'clientAuth';
const PURPOSE_OIDS: Record<TlsPurpose, string> = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
};

/**
 * The extensions a certificate may mark critical: those this module or verify.ts enforces, and
 * those OpenSSL 3.0 "supports" without constraining a TLS path (policies, CRL distribution
 * points, OCSP no-check). OpenSSL also supports RFC 3779 resource blocks and proxy certificates;
 * neither belongs in mail, so critical ones are refused here.
 */
const KNOWN_CRITICAL = new Set([
  '2.5.29.19', // basicConstraints
  '2.5.29.15', // keyUsage
  '2.5.29.37', // extKeyUsage
  '2.5.29.17', // subjectAltName
  '2.5.29.30', // nameConstraints (name-constraints.ts)
  '2.16.840.1.113730.1.1', // Netscape Cert Type
  '2.5.29.32', // certificatePolicies
  '2.5.29.33', // policyMappings
  '2.5.29.36', // policyConstraints
  '2.5.29.54', // inhibitAnyPolicy
  '2.5.29.31', // cRLDistributionPoints
  '1.3.6.1.5.5.7.48.1.5', // OCSP no-check
]);

/**
 * The first reason `path` (leaf first, the partner's anchor last) may not serve the rule, or
 * undefined. `labels[i]` names path[i] in the reason ("certificate", "issuer CN=..."); leafNames
 * are the leaf's DNS names as name matching reads them.
 */
export function chainPurposeProblem(
  path: readonly X509Certificate[],
  labels: readonly string[],
  leafNames: readonly string[],
  rule: PurposeRule,
): string | undefined {
  const extensions: CertificateExtensions[] = [];
  for (const [index, certificate] of path.entries()) {
    const reading = certificateExtensions(certificate);
    const label = labels[index] ?? 'certificate';
    if ('problem' in reading) return `${label} ${reading.problem}`;
    const unknown = reading.extensions.present.find(
      ({ oid, critical }) => critical && !KNOWN_CRITICAL.has(oid),
    );
    if (unknown !== undefined) return `${label} has an unknown critical extension ${unknown.oid}`;
    extensions.push(reading.extensions);
  }
  return (
    authorityProblem(path, extensions, labels) ??
    keyUsageProblem(extensions[0]) ??
    extendedUsageProblem(extensions, labels, rule) ??
    nameConstraintsProblem(path, labels, leafNames)
  );
}

/** Every certificate above the leaf must be a CA allowed to sign certificates this deep. */
function authorityProblem(
  path: readonly X509Certificate[],
  extensions: readonly CertificateExtensions[],
  labels: readonly string[],
): string | undefined {
  // CA certificates between the one judged and the leaf; self-issued ones do not count (RFC
  // 5280 §6.1.4 (l)), as in OpenSSL.
  let below = 0;
  for (const [index, certificate] of path.entries()) {
    if (index === 0) continue;
    const label = labels[index] ?? 'issuer';
    const { basicConstraints, keyUsage } = extensions[index] ?? {};
    if (basicConstraints?.ca !== true) return `${label} is not a CA (no basicConstraints CA:TRUE)`;
    if (keyUsage !== undefined && !keyUsage.has('keyCertSign')) {
      return `${label} has a keyUsage without keyCertSign`;
    }
    const limit = basicConstraints.pathLength;
    if (limit !== undefined && below > limit) {
      return `${label} has a path length constraint of ${limit}, exceeded by ${below} CA certificate${below === 1 ? '' : 's'} below it`;
    }
    if (certificate.subject !== certificate.issuer) below += 1;
  }
  return undefined;
}

/**
 * A TLS handshake signs with the peer's key: a client's CertificateVerify always, a server's in
 * TLS 1.3 and every ECDHE suite. OpenSSL's purposes also let keyAgreement (client and server)
 * and keyEncipherment (server: RSA key transport) through; we demand digitalSignature, stricter.
 */
function keyUsageProblem(leaf: CertificateExtensions | undefined): string | undefined {
  const usage = leaf?.keyUsage;
  return usage === undefined || usage.has('digitalSignature')
    ? undefined
    : 'certificate keyUsage lacks digitalSignature';
}

/**
 * A server must show serverAuth; a client serverAuth or clientAuth (as
 * Exchange accepts), clientAuth under clientCertificatePurpose: strict. One purpose must fit the
 * whole path: the leaf's EKU and Netscape Cert Type, and the EKU of every CA above it.
 * anyExtendedKeyUsage does not stand in for a purpose: OpenSSL 3.0 refuses it alone, leaf or CA.
 */
function extendedUsageProblem(
  extensions: readonly CertificateExtensions[],
  labels: readonly string[],
  { role, strict }: PurposeRule,
): string | undefined {
  const leaf = extensions[0];
  const usages = leaf?.extendedKeyUsage;
  const demanded: TlsPurpose[] =
    role === 'server' ? ['serverAuth'] : strict ? ['clientAuth'] : ['serverAuth', 'clientAuth'];
  if (usages === undefined && strict && role === 'client') {
    return 'certificate has no Extended Key Usage, clientAuth is required (clientCertificatePurpose: strict)';
  }
  let fitting = demanded.filter((purpose) => usages?.has(PURPOSE_OIDS[purpose]) ?? true);
  if (fitting.length === 0) {
    if (strict && role === 'client') {
      return 'certificate Extended Key Usage lacks clientAuth (clientCertificatePurpose: strict)';
    }
    return role === 'server'
      ? 'certificate Extended Key Usage lacks serverAuth'
      : 'certificate Extended Key Usage has neither serverAuth nor clientAuth';
  }
  const netscape = leaf?.netscapeCertType;
  if (netscape !== undefined) {
    const allowedBefore = fitting;
    fitting = fitting.filter((purpose) =>
      purpose === 'serverAuth' ? netscape.sslServer : netscape.sslClient,
    );
    if (fitting.length === 0) {
      const wanted = allowedBefore.map((p) => (p === 'serverAuth' ? 'SSL server' : 'SSL client'));
      return `certificate Netscape Cert Type allows no ${wanted.join(' or ')} use`;
    }
  }
  for (const [index, authority] of extensions.entries()) {
    const authorityUsages = authority.extendedKeyUsage;
    if (index === 0 || authorityUsages === undefined) continue;
    const left = fitting.filter((purpose) => authorityUsages.has(PURPOSE_OIDS[purpose]));
    if (left.length === 0) {
      const narrowed =
        fitting.length < demanded.length ? ', the certificate’s only TLS purpose' : '';
      const rule = strict && role === 'client' ? ' (clientCertificatePurpose: strict)' : '';
      return `${labels[index] ?? 'issuer'} has an Extended Key Usage without ${fitting.join(' or ')}${narrowed}${rule}`;
    }
    fitting = left;
  }
  return undefined;
}
