// The listener's side of TLS: the certificate and CA list smtp-server presents and asks with,
// and what a finished handshake tells the session (recorded in onSecure, judged at MAIL FROM).
import { createHash, hkdfSync, type X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Generation } from '../generation.js';
import type { ReceiveConnectorSpec } from '../../model.js';
import { authorizationCode, distinguishedName, peerChain } from '../tls/verify.js';

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

/**
 * TLS 1.3's suites, then for TLS 1.2 only forward-secret AEAD suites (Mozilla's "intermediate"
 * list): Node's default also offers CBC and RSA key transport. DHE-RSA-AES-GCM (with dhparam
 * 'auto') serves Exchange on Windows Server 2012 R2, which has no ECDHE-RSA GCM suite.
 */
export const RECEIVE_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'DHE-RSA-AES128-GCM-SHA256',
  'DHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-CHACHA20-POLY1305',
].join(':');

export function tlsOptions(
  generation: Generation,
  ticketSecret?: Buffer,
): {
  key: string;
  cert: string;
  ca: string[] | undefined;
  ciphers: string;
  dhparam: 'auto';
  ticketKeys?: Buffer;
} {
  const { key, cert, ca } = generation.serverTls;
  // No receive partner, no CA list: every client certificate is then merely "not authorized".
  return {
    key,
    cert,
    ca: ca.length > 0 ? ca : undefined,
    ciphers: RECEIVE_CIPHERS,
    dhparam: 'auto',
    ...(ticketSecret === undefined ? {} : { ticketKeys: ticketKeys(ticketSecret, generation) }),
  };
}

/**
 * The session ticket keys (48 bytes: name, HMAC and AES keys) for this TLS identity, from a
 * secret the receive processes share: a ticket one worker issued resumes in another, as it does
 * in one process, while a new certificate, key or CA list gets new keys (its tickets are not the
 * old one's). The secret is random and lives in memory only; without it each SecureContext
 * makes keys of its own.
 */
export function ticketKeys(secret: Buffer, generation: Generation): Buffer {
  const identity = createHash('sha256').update(tlsIdentity(generation)).digest();
  return Buffer.from(hkdfSync('sha256', secret, identity, 'domsec session ticket keys', 48));
}

/** Whether sessions on the connector are offered STARTTLS: its authMechanisms have `tls`. */
export function offersStartTls(spec: ReceiveConnectorSpec): boolean {
  return spec.authMechanisms.includes('tls');
}

/** Changes exactly when the server's SecureContext must be rebuilt. */
export function tlsIdentity(generation: Generation): string {
  const { key, cert, ca } = generation.serverTls;
  return [key, cert, ...ca].join('\n');
}

export function tlsFacts(socket: TLSSocket): TlsFacts {
  return {
    protocol: socket.getProtocol(),
    cipher: socket.getCipher()?.name ?? null,
    authorized: socket.authorized,
    authorizationError: authorizationCode(socket),
    chain: peerChain(socket),
  };
}

/** The protocol log's information lines for a finished handshake. */
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
