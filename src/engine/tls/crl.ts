// Certificate revocation lists of trust anchors (a certificate revoked by a CRL of the
// partner's anchor is refused). Node cannot read CRLs, so this reads the few DER fields a check
// needs, and verifies the list's signature with the anchor's key before believing a word of it.
import { verify, type X509Certificate } from 'node:crypto';
import { derChildren, derElement, derOid, derTime, type DerElement } from '../../der.js';

export interface RevocationList {
  /** Serial numbers of revoked certificates: uppercase hex without leading zeros. */
  revoked: ReadonlySet<string>;
  thisUpdate: number; // ms since the epoch
  /** When the issuer promises a newer list; after it, this one is stale. */
  nextUpdate: number | undefined;
}

export class CrlError extends Error {}

/** Signature algorithms accepted on a CRL, by OID, with the digest crypto.verify needs. */
const SIGNATURE_DIGESTS: ReadonlyMap<string, string | null> = new Map([
  ['1.2.840.113549.1.1.11', 'sha256'], // sha256WithRSAEncryption
  ['1.2.840.113549.1.1.12', 'sha384'],
  ['1.2.840.113549.1.1.13', 'sha512'],
  ['1.2.840.10045.4.3.2', 'sha256'], // ecdsa-with-SHA256
  ['1.2.840.10045.4.3.3', 'sha384'],
  ['1.2.840.10045.4.3.4', 'sha512'],
  ['1.3.101.112', null], // Ed25519
]);

/**
 * The revocation list in `pem`, after checking it was signed by `issuer`. Throws CrlError when it
 * cannot be read, is signed by another key or with a weak algorithm.
 */
export function readRevocationList(pem: string, issuer: X509Certificate): RevocationList {
  const base64 = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(pem)?.[1];
  if (base64 === undefined) throw new CrlError('holds no PEM CRL');
  const der = Buffer.from(base64.replace(/\s+/g, ''), 'base64');
  try {
    return readDer(der, issuer);
  } catch (error) {
    if (error instanceof CrlError) throw error;
    throw new CrlError(`cannot be read: ${(error as Error).message}`);
  }
}

function readDer(der: Buffer, issuer: X509Certificate): RevocationList {
  const list = derElement(der, 0, 0x30);
  if (list.end !== der.length) throw new CrlError('cannot be read: data after the list');
  const [tbs, algorithm, signature] = derChildren(der, list);
  if (tbs?.tag !== 0x30 || algorithm?.tag !== 0x30 || signature?.tag !== 0x03) {
    throw new CrlError('cannot be read: not a CertificateList');
  }
  const oid = derOid(der, derElement(der, algorithm.start, 0x06));
  const digest = SIGNATURE_DIGESTS.get(oid);
  if (digest === undefined) throw new CrlError(`is signed with an algorithm not accepted (${oid})`);
  // A BIT STRING's first octet counts unused bits: 0 for every signature.
  const signatureBytes = der.subarray(signature.start + 1, signature.end);
  const signed = verify(
    digest,
    der.subarray(tbs.offset, tbs.end),
    issuer.publicKey,
    signatureBytes,
  );
  if (!signed) throw new CrlError(`is not signed by ${issuer.subject.split('\n').join(', ')}`);

  const fields = derChildren(der, tbs);
  let index = fields[0]?.tag === 0x02 ? 1 : 0; // version (v2)
  index += 2; // signature algorithm, repeated; issuer
  const time = (field: DerElement | undefined) =>
    field !== undefined && (field.tag === 0x17 || field.tag === 0x18) ? field : undefined;
  const thisField = time(fields[index++]);
  if (thisField === undefined) throw new CrlError('cannot be read: no thisUpdate');
  const nextField = time(fields[index]);
  if (nextField !== undefined) index++;
  const revoked = new Set<string>();
  const entries = fields[index];
  if (entries?.tag === 0x30) {
    for (const entry of derChildren(der, entries)) {
      const serial = derElement(der, entry.start, 0x02);
      revoked.add(normalSerial(der.subarray(serial.start, serial.end).toString('hex')));
    }
  }
  return {
    revoked,
    thisUpdate: derTime(der, thisField),
    nextUpdate: nextField === undefined ? undefined : derTime(der, nextField),
  };
}

/** A serial number as it is compared: uppercase hex, no leading zeros. */
export function normalSerial(hex: string): string {
  return hex.toUpperCase().replace(/^0+(?=.)/, '');
}
