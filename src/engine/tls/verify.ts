// Verifies a peer's certificate chain against ONE partner: the path must end at
// that partner's own anchors, every certificate on it be valid now, the path fit the peer's role
// (chain-purpose.ts) and the leaf name the partner. OpenSSL's single verdict over the union CA
// list is only an extra input.
// What does not depend on the clock is kept on the generation's partner per chain; validity is
// checked per call.
import { X509Certificate } from 'node:crypto';
import type { TLSSocket, DetailedPeerCertificate } from 'node:tls';
import type { LoadedPartner } from '../generation.js';
import { certificateDnsNames, namesPartner } from '../../certificate-names.js';
import { keyWeakness, signatureWeakness } from '../../certificate-strength.js';
import { chainPurposeProblem } from './chain-purpose.js';
import { BoundedMemo } from '../bounded-memo.js';
import type { ChainFacts, PathValidity } from './chain-facts.js';
import { normalSerial } from './crl.js';

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

/** Certificates above the leaf that a path may climb through before it must reach an anchor. */
const MAX_PATH_DEPTH = 8;

export function verifyPeer(input: VerifyPeerInput): PeerVerdict {
  const { chain, role } = input;
  if (chain[0] === undefined) {
    return {
      ok: false,
      reason: role === 'client' ? 'no client certificate' : 'no server certificate',
    };
  }
  const facts = chainFacts(input);
  const { subject, fingerprint, names } = facts;
  const refuse = (reason: string): PeerVerdict => ({
    ok: false,
    reason,
    subject,
    fingerprint,
    names,
  });
  if (facts.path === undefined) return refuse(facts.refusal);

  // The clock is read on every call: a cached chain still expires on time.
  const now = (input.now ?? new Date()).getTime();
  for (const [index, validity] of facts.path.entries()) {
    const problem = validityProblem(validity, now);
    if (problem === undefined) continue;
    const which = index === 0 ? 'certificate' : `issuer ${validity.subject}`;
    return refuse(`${which} ${problem}`);
  }
  const crl = facts.revocation;
  if (crl?.nextUpdate !== undefined && now > crl.nextUpdate) {
    // A stale list may miss a revocation: refuse, as OpenSSL does with CRL checking on.
    return refuse(
      `the CRL of ${crl.issuer} is out of date since ${new Date(crl.nextUpdate).toISOString()}`,
    );
  }
  if (facts.refusal !== undefined) return refuse(facts.refusal);
  return { ok: true, subject, fingerprint, names, issuer: facts.issuer };
}

/**
 * The chain's facts from the partner's memo (so per generation: a new generation, with new
 * anchors, names or purpose rule, starts empty). Keyed by the role, OpenSSL's code and every
 * certificate of the chain in order (the SHA-256 of its DER).
 */
function chainFacts(input: VerifyPeerInput): ChainFacts {
  const { chain, partner, role } = input;
  const openssl = input.opensslError ?? '';
  const key = `${role}\n${openssl}\n${chain.map((cert) => cert.fingerprint256).join(',')}`;
  return partner.verifiedChains.get(key, () => computeChainFacts(chain, partner, role, openssl));
}

function computeChainFacts(
  chain: readonly X509Certificate[],
  partner: LoadedPartner,
  role: 'client' | 'server',
  openssl: string,
): ChainFacts {
  const leaf = chain[0];
  if (leaf === undefined) throw new RangeError('a chain without a leaf has no facts');
  const certificate = {
    subject: distinguishedName(leaf.subject),
    fingerprint: leaf.fingerprint256,
    names: certificateDnsNames(leaf),
  };
  const path = pathToAnchor(chain, partner);
  if (path === undefined) {
    const refusal = `certificate is not issued by a trust anchor of partner ${partner.domain}`;
    return { ...certificate, path: undefined, refusal };
  }
  const validity = path.map((cert) => ({
    subject: distinguishedName(cert.subject),
    notBefore: Date.parse(cert.validFrom),
    notAfter: Date.parse(cert.validTo),
  }));
  const top = path[path.length - 1] ?? leaf;
  const issuer = distinguishedName(top.subject);
  // The anchor's CRL covers what the anchor issued (the link below it on the path).
  const list = partner.revocations.get(top.fingerprint256);
  const below = path[path.length - 2];
  const revoked =
    list !== undefined && below !== undefined && list.revoked.has(normalSerial(below.serialNumber))
      ? `${below === leaf ? 'certificate' : `issuer ${distinguishedName(below.subject)}`} is revoked by the CRL of ${issuer}`
      : undefined;
  return {
    ...certificate,
    path: validity,
    issuer,
    refusal: revoked ?? timelessRefusal(path, certificate.names, partner, role, openssl),
    ...(list === undefined ? {} : { revocation: { issuer, nextUpdate: list.nextUpdate } }),
  };
}

/** The checks after validity, in order; none of them depends on the clock. */
function timelessRefusal(
  path: readonly X509Certificate[],
  names: string[],
  partner: LoadedPartner,
  role: 'client' | 'server',
  openssl: string,
): string | undefined {
  // Keys and signatures OpenSSL's default security level still lets through (RSA 1024) or
  // refuses without a usable reason (SHA-1): every certificate below the anchor is judged here.
  for (const [index, cert] of path.slice(0, -1).entries()) {
    const weakness = keyWeakness(cert) ?? signatureWeakness(cert);
    if (weakness === undefined) continue;
    const which = index === 0 ? 'certificate' : `issuer ${distinguishedName(cert.subject)}`;
    return `${which} has ${weakness}`;
  }

  // Extensions, CA flags, path lengths, usages and name constraints of the whole path: what
  // OpenSSL's INVALID_PURPOSE may hide, checked whatever OpenSSL said.
  const labels = path.map((cert, index) =>
    index === 0 ? 'certificate' : `issuer ${distinguishedName(cert.subject)}`,
  );
  const strict = role === 'client' && partner.spec.clientCertificatePurpose === 'strict';
  const purpose = chainPurposeProblem(path, labels, names, { role, strict });
  if (purpose !== undefined) return purpose;

  const naming = {
    domain: partner.domain,
    certificateNames: partner.spec.certificateNames,
    certificateNameMatch: partner.spec.certificateNameMatch,
  };
  if (!namesPartner(names, naming)) {
    const had = names.length === 0 ? 'no DNS name' : names.join(', ');
    return `certificate names ${had}, expected ${expectedNames(partner).join(' or ')}`;
  }

  // OpenSSL reports one code only. INVALID_PURPOSE for a client is the "SSL client" purpose
  // check, replaced by chain-purpose.ts (which also checks all that the code can hide);
  // anything else is a failure our checks missed.
  if (openssl !== '' && !(role === 'client' && openssl === 'INVALID_PURPOSE')) {
    return `TLS verification failed: ${openssl}`;
  }
  return undefined;
}

/**
 * The certificates from the leaf up to and including one of the partner's anchors, each issued
 * and signed by the next, or undefined when the chain does not reach one.
 */
function pathToAnchor(
  chain: readonly X509Certificate[],
  partner: LoadedPartner,
): X509Certificate[] | undefined {
  const anchors = partner.anchorFingerprints;
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

function validityProblem({ notBefore, notAfter }: PathValidity, now: number): string | undefined {
  if (Number.isNaN(notBefore) || Number.isNaN(notAfter)) return 'has an unreadable validity period';
  if (now < notBefore) return `is not valid before ${new Date(notBefore).toISOString()}`;
  if (now > notAfter) return `expired on ${new Date(notAfter).toISOString()}`;
  return undefined;
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
 * Parsed certificates by the SHA-256 of their DER, least recently used first out. A partner
 * presents the same chain on every connection, and parsing it again cost about 0.15 ms a
 * certificate. Safe to share: an X509Certificate is a pure function of its bytes; which
 * certificates a chain has, in which order, is still read from each handshake.
 */
const parsedCertificates = new BoundedMemo<string, X509Certificate>(1_000);

function parsed(cert: DetailedPeerCertificate): X509Certificate {
  // Node computes the fingerprint over the DER it hands over as raw.
  return parsedCertificates.get(cert.fingerprint256, () => new X509Certificate(cert.raw));
}

/**
 * OpenSSL's verdict on the peer's chain as its code ("UNABLE_TO_GET_ISSUER_CERT_LOCALLY"), null
 * when it verified. Node types socket.authorizationError as an Error; at run time it is the code
 * as a string. The one reading of it, for both sides (receive's tlsFacts, send and probe).
 */
export function authorizationCode(socket: TLSSocket): string | null {
  const value = socket.authorizationError as unknown;
  if (typeof value === 'string') return value;
  if (value instanceof Error) return (value as NodeJS.ErrnoException).code ?? value.message;
  return null;
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
    if (seen.has(cert.fingerprint256)) break;
    seen.add(cert.fingerprint256);
    chain.push(parsed(cert));
    cert = cert.issuerCertificate as DetailedPeerCertificate | undefined;
  }
  return chain;
}
