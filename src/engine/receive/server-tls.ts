// The listener's side of TLS: the certificate and CA list smtp-server presents and asks with,
// and what a finished handshake tells the session (recorded in onSecure, judged at MAIL FROM).
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { Generation } from '../generation.js';
import { canonicalName } from '../../certificate-names.js';
import { distinguishedName } from '../tls/verify.js';

/** What a session learned from its TLS handshake. */
export interface TlsFacts {
  protocol: string | null;
  cipher: string | null;
  /** OpenSSL's verdict over the union of every receive partner's anchors. */
  authorized: boolean;
  authorizationError: string | null;
  /** The peer's chain, leaf first; empty without a client certificate. */
  chain: X509Certificate[];
}

export function tlsOptions(generation: Generation): {
  key: string;
  cert: string;
  ca: string[] | undefined;
} {
  const { key, cert, ca } = generation.serverTls;
  // No receive partner, no CA list: every client certificate is then merely "not authorized".
  return { key, cert, ca: ca.length > 0 ? ca : undefined };
}

/** Changes exactly when the server's SecureContext must be rebuilt. */
export function tlsIdentity(generation: Generation): string {
  const { key, cert, ca } = generation.serverTls;
  return [key, cert, ...ca].join('\n');
}

export function tlsFacts(socket: TLSSocket): TlsFacts {
  // Node's types say Error; at runtime it is the OpenSSL code as a string.
  const error: unknown = socket.authorizationError;
  const code =
    typeof error === 'string'
      ? error
      : error instanceof Error
        ? ((error as NodeJS.ErrnoException).code ?? error.message)
        : null;
  return {
    protocol: socket.getProtocol(),
    cipher: socket.getCipher()?.name ?? null,
    authorized: socket.authorized,
    authorizationError: code,
    chain: receivedChain(socket),
  };
}

/**
 * Parsed certificates by their DER bytes. A partner presents the same chain on every connection,
 * and parsing it again (about 0.15 ms a certificate) was a tenth of a new session's CPU. Safe to
 * share: an X509Certificate is a pure function of its bytes; the chain itself (which certificates,
 * in which order) is still read from each handshake.
 */
const parsedCertificates = new Map<string, X509Certificate>();
const MAX_PARSED_CERTIFICATES = 1_000;

/** tls/verify.ts's peerChain, with the parse shared across sessions: leaf first, empty if none. */
function receivedChain(socket: TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let cert: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  // A self-signed top points at itself; the bound guards against anything stranger.
  while (cert?.raw !== undefined && chain.length <= 10) {
    const key = cert.raw.toString('base64');
    if (seen.has(key)) break;
    seen.add(key);
    let x509 = parsedCertificates.get(key);
    if (x509 === undefined) {
      if (parsedCertificates.size >= MAX_PARSED_CERTIFICATES) parsedCertificates.clear();
      x509 = new X509Certificate(cert.raw);
      parsedCertificates.set(key, x509);
    }
    chain.push(x509);
    cert = cert.issuerCertificate as DetailedPeerCertificate | undefined;
  }
  return chain;
}

/** The protocol log's information lines for a finished handshake (SPEC §7). */
export function describeHandshake(tls: TlsFacts): string[] {
  const leaf = tls.chain[0];
  const openssl = tls.authorized ? 'authorized' : (tls.authorizationError ?? 'not authorized');
  return [
    `TLS protocol=${tls.protocol ?? '?'} cipher=${tls.cipher ?? '?'}`,
    leaf === undefined
      ? 'no client certificate'
      : `client certificate subject="${distinguishedName(leaf.subject)}" issuer="${distinguishedName(leaf.issuer)}" fingerprint=${leaf.fingerprint256}`,
    `OpenSSL client certificate verification: ${openssl}`,
  ];
}

/** Whether one of the certificate's names is the host, or a wildcard one label above it. */
export function coversHost(names: readonly string[], host: string): boolean {
  const wanted = canonicalName(host);
  return names.some((name) => {
    const candidate = canonicalName(name);
    if (candidate === wanted) return true;
    if (!candidate.startsWith('*.')) return false;
    const parent = candidate.slice(1);
    return wanted.endsWith(parent) && !wanted.slice(0, -parent.length).includes('.');
  });
}
