// Certificate strength: keys too small and signatures made with a broken hash (MD5, SHA-1).
// Pure, shared by the engine's peer verification; read from the certificate's own DER because
// X509Certificate does not expose the signature algorithm.
import type { X509Certificate } from 'node:crypto';
import { derChildren, derElement, DerError, derOid } from './der.js';

const MIN_RSA_BITS = 2048;
const SEQUENCE = 0x30;
const OID = 0x06;
const STRONG_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);

/** Signature algorithms whose hash is broken (collisions found), by OID. */
const WEAK_SIGNATURES = new Map([
  ['1.2.840.113549.1.1.2', 'MD2 with RSA'],
  ['1.2.840.113549.1.1.4', 'MD5 with RSA'],
  ['1.2.840.113549.1.1.5', 'SHA-1 with RSA'],
  ['1.3.14.3.2.29', 'SHA-1 with RSA'],
  ['1.2.840.10045.4.1', 'ECDSA with SHA-1'],
  ['1.2.840.10040.4.3', 'DSA with SHA-1'],
]);

/** Why the certificate's key is too weak, e.g. "a 1024-bit RSA key", or undefined. */
export function keyWeakness(certificate: X509Certificate): string | undefined {
  const key = certificate.publicKey;
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails;
  if (type === 'rsa' || type === 'rsa-pss' || type === 'dsa') {
    const bits = details?.modulusLength;
    if (bits === undefined || bits < MIN_RSA_BITS)
      return `a ${bits ?? 'unknown'}-bit ${type.toUpperCase()} key`;
  }
  if (type === 'ec' && !STRONG_CURVES.has(details?.namedCurve ?? ''))
    return `an EC key on curve ${details?.namedCurve ?? 'unknown'}`;
  return undefined;
}

/** Why the signature on the certificate is weak, e.g. "a SHA-1 with RSA signature", or undefined. */
export function signatureWeakness(certificate: X509Certificate): string | undefined {
  const oid = signatureAlgorithmOid(certificate.raw);
  const weak = oid === undefined ? undefined : WEAK_SIGNATURES.get(oid);
  return weak === undefined ? undefined : `a ${weak} signature`;
}

/**
 * The signatureAlgorithm OID of a DER certificate (RFC 5280 §4.1.1.2: the second element of the
 * outer SEQUENCE), in dotted form; undefined when the DER is not shaped like a certificate.
 */
export function signatureAlgorithmOid(der: Uint8Array): string | undefined {
  try {
    const [, algorithm] = derChildren(der, derElement(der, 0, SEQUENCE));
    if (algorithm?.tag !== SEQUENCE) return undefined;
    return derOid(der, derElement(der, algorithm.start, OID));
  } catch (error) {
    if (error instanceof DerError) return undefined; // Node parsed it: no verdict, not a crash
    throw error;
  }
}
