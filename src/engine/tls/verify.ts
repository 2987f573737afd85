// Verifies a peer's certificate chain against ONE partner (SPEC §3, §4, §9): the path must end at
// that partner's own anchors, every certificate on it be valid now, the leaf fit its purpose and
// name the partner. OpenSSL's single verdict over the union CA list is only an extra input.
import { X509Certificate } from 'node:crypto';
import type { TLSSocket, DetailedPeerCertificate } from 'node:tls';
import type { LoadedPartner } from '../generation.js';
import { certificateDnsNames, namesPartner } from '../../certificate-names.js';

export type PeerVerdict =
  | { ok: true; subject: string; fingerprint: string; names: string[]; issuer: string }
  | { ok: false; reason: string; subject?: string; fingerprint?: string; names?: string[] };

export interface VerifyPeerInput {
  /** Leaf first, then what the peer sent or Node built (may include the root). */
  chain: X509Certificate[];
  partner: LoadedPartner;
  /** The role the PEER played: 'client' when we received, 'server' when we sent. */
  role: 'client' | 'server';
  now?: Date;
  /** socket.authorizationError, if any. */
  opensslError?: string | null;
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/** Certificates above the leaf that a path may climb through before it must reach an anchor. */
const MAX_PATH_DEPTH = 8;

export function verifyPeer(input: VerifyPeerInput): PeerVerdict {
  const { chain, partner, role } = input;
  const leaf = chain[0];
  if (leaf === undefined) {
    return {
      ok: false,
      reason: role === 'client' ? 'no client certificate' : 'no server certificate',
    };
  }
  const subject = distinguishedName(leaf.subject);
  const fingerprint = leaf.fingerprint256;
  const names = certificateDnsNames(leaf);
  const refuse = (reason: string): PeerVerdict => ({
    ok: false,
    reason,
    subject,
    fingerprint,
    names,
  });

  const path = pathToAnchor(chain, partner);
  if (path === undefined) {
    return refuse(`certificate is not issued by a trust anchor of partner ${partner.domain}`);
  }

  const now = input.now ?? new Date();
  for (const [index, cert] of path.entries()) {
    const problem = validityProblem(cert, now);
    if (problem === undefined) continue;
    const which = index === 0 ? 'certificate' : `issuer ${distinguishedName(cert.subject)}`;
    return refuse(`${which} ${problem}`);
  }

  const purpose = purposeProblem(leaf, role, partner);
  if (purpose !== undefined) return refuse(purpose);

  const naming = {
    domain: partner.domain,
    certificateNames: partner.spec.certificateNames,
    certificateNameMatch: partner.spec.certificateNameMatch,
  };
  if (!namesPartner(names, naming)) {
    const had = names.length === 0 ? 'no DNS name' : names.join(', ');
    return refuse(`certificate names ${had}, expected ${expectedNames(partner).join(' or ')}`);
  }

  // OpenSSL reports one code only. INVALID_PURPOSE for a client is the "SSL client" purpose
  // check that SPEC §3 replaces with its own; anything else is a failure our checks missed.
  const openssl = input.opensslError ?? null;
  if (openssl !== null && openssl !== '' && !(role === 'client' && openssl === 'INVALID_PURPOSE')) {
    return refuse(`TLS verification failed: ${openssl}`);
  }

  const top = path[path.length - 1] ?? leaf;
  return { ok: true, subject, fingerprint, names, issuer: distinguishedName(top.subject) };
}

/**
 * The certificates from the leaf up to and including one of the partner's anchors, each issued
 * and signed by the next, or undefined when the chain does not reach one.
 */
function pathToAnchor(
  chain: readonly X509Certificate[],
  partner: LoadedPartner,
): X509Certificate[] | undefined {
  const anchors = anchorFingerprints(partner);
  const leaf = chain[0];
  if (leaf === undefined) return undefined;
  const path = [leaf];
  const visited = new Set([leaf.fingerprint256]);
  let current = leaf;
  for (let depth = 0; depth <= MAX_PATH_DEPTH; depth += 1) {
    if (anchors.has(current.fingerprint256)) return path;
    const anchor = partner.anchors.find((candidate) => candidate.ca && issued(candidate, current));
    if (anchor !== undefined) return [...path, anchor];
    const parent = chain.find(
      (candidate) =>
        !visited.has(candidate.fingerprint256) && candidate.ca && issued(candidate, current),
    );
    if (parent === undefined) return undefined;
    visited.add(parent.fingerprint256);
    path.push(parent);
    current = parent;
  }
  return undefined;
}

function issued(parent: X509Certificate, child: X509Certificate): boolean {
  if (!child.checkIssued(parent)) return false;
  try {
    return child.verify(parent.publicKey);
  } catch {
    // A key type Node cannot verify with is not a signature we accept.
    return false;
  }
}

const anchorCache = new WeakMap<LoadedPartner, ReadonlySet<string>>();

/** fingerprint256 is computed on every read; a partner's anchors are fixed per generation. */
function anchorFingerprints(partner: LoadedPartner): ReadonlySet<string> {
  let found = anchorCache.get(partner);
  if (found === undefined) {
    found = new Set(partner.anchors.map((anchor) => anchor.fingerprint256));
    anchorCache.set(partner, found);
  }
  return found;
}

function validityProblem(cert: X509Certificate, now: Date): string | undefined {
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (Number.isNaN(notBefore) || Number.isNaN(notAfter)) return 'has an unreadable validity period';
  if (now.getTime() < notBefore) return `is not valid before ${new Date(notBefore).toISOString()}`;
  if (now.getTime() > notAfter) return `expired on ${new Date(notAfter).toISOString()}`;
  return undefined;
}

/** SPEC §3: serverAuth or clientAuth (or no EKU) from a client; strict partners demand clientAuth. */
function purposeProblem(
  leaf: X509Certificate,
  role: 'client' | 'server',
  partner: LoadedPartner,
): string | undefined {
  const usages = leaf.keyUsage as string[] | undefined; // undefined when the extension is absent
  const strict = role === 'client' && partner.spec.clientCertificatePurpose === 'strict';
  if (usages === undefined) {
    return strict
      ? 'certificate has no Extended Key Usage, clientAuth is required (clientCertificatePurpose: strict)'
      : undefined;
  }
  if (strict) {
    return usages.includes(CLIENT_AUTH)
      ? undefined
      : 'certificate Extended Key Usage lacks clientAuth (clientCertificatePurpose: strict)';
  }
  if (role === 'server') {
    return usages.includes(SERVER_AUTH)
      ? undefined
      : 'certificate Extended Key Usage lacks serverAuth';
  }
  return usages.includes(SERVER_AUTH) || usages.includes(CLIENT_AUTH)
    ? undefined
    : 'certificate Extended Key Usage has neither serverAuth nor clientAuth';
}

function expectedNames(partner: LoadedPartner): string[] {
  const expected = [partner.domain, ...partner.spec.certificateNames];
  if (partner.spec.certificateNameMatch === 'subdomain') {
    expected.push(`*.${partner.domain}`, `a host directly under ${partner.domain}`);
  }
  return [...new Set(expected)];
}

/** Node prints a DN one attribute per line; one line reads better in logs and headers. */
export function distinguishedName(text: string): string {
  return text.split('\n').join(', ');
}

/**
 * The peer chain of a TLS socket as X509Certificates, leaf first (getPeerCertificate(true),
 * following issuerCertificate until it repeats). Empty when no certificate.
 */
export function peerChain(socket: TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let cert: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  // A self-signed top points at itself; the bound guards against anything stranger.
  while (cert?.raw !== undefined && chain.length <= MAX_PATH_DEPTH + 2) {
    const x509 = new X509Certificate(cert.raw);
    if (seen.has(x509.fingerprint256)) break;
    seen.add(x509.fingerprint256);
    chain.push(x509);
    cert = cert.issuerCertificate as DetailedPeerCertificate | undefined;
  }
  return chain;
}
