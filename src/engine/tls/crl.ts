// Certificate revocation lists of trust anchors (a certificate revoked by a CRL of the
// partner's anchor is refused). @peculiar/x509 reads the list; its signature is checked with the
// anchor's key before a word of it is believed, synchronously with node:crypto (the library's own
// check is WebCrypto, asynchronous, and generations are built synchronously).
import { verify, type X509Certificate } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as X509 from '@peculiar/x509';
import { derElement } from '../../der.js';

export interface RevocationList {
  /** Serial numbers of revoked certificates: uppercase hex without leading zeros. */
  revoked: ReadonlySet<string>;
  thisUpdate: number; // ms since the epoch
  /** When the issuer promises a newer list; after it, this one is stale. */
  nextUpdate: number | undefined;
}

export class CrlError extends Error {}

/**
 * Signature algorithms accepted on a CRL, by OID: the digest crypto.verify needs, and the kind of
 * key that signs with it (Node would check an RSA signature labelled ECDSA, or anything labelled
 * Ed25519, with whatever key it is given).
 */
const SIGNATURE_ALGORITHMS: ReadonlyMap<string, { digest: string | null; key: string }> = new Map([
  ['1.2.840.113549.1.1.11', { digest: 'sha256', key: 'rsa' }], // sha256WithRSAEncryption
  ['1.2.840.113549.1.1.12', { digest: 'sha384', key: 'rsa' }],
  ['1.2.840.113549.1.1.13', { digest: 'sha512', key: 'rsa' }],
  ['1.2.840.10045.4.3.2', { digest: 'sha256', key: 'ec' }], // ecdsa-with-SHA256
  ['1.2.840.10045.4.3.3', { digest: 'sha384', key: 'ec' }],
  ['1.2.840.10045.4.3.4', { digest: 'sha512', key: 'ec' }],
  ['1.3.101.112', { digest: null, key: 'ed25519' }], // Ed25519
]);

/** What a check needs of a parsed list that X509Crl keeps to itself: the signed bytes. */
interface SignedList {
  crl: X509.X509Crl;
  /** The DER of tbsCertList as it was signed. */
  signed: ArrayBuffer | undefined;
  /** The signature algorithm outside the signed part, and whether the signed part names it too. */
  algorithm: string;
  algorithmsAgree: boolean;
}

let readList: ((der: Uint8Array) => SignedList) | undefined;

/**
 * The reader of CRLs, made on the first list: loading @peculiar/x509 (after the Reflect polyfill
 * it requires) takes a good part of a second, which a command without CRLs should not pay.
 */
function listReader(): (der: Uint8Array) => SignedList {
  if (readList !== undefined) return readList;
  const require = createRequire(import.meta.url);
  require('reflect-metadata');
  const { X509Crl } = require('@peculiar/x509') as typeof X509;
  class ReadCrl extends X509Crl {
    signedList(): SignedList {
      const { asn } = this;
      return {
        crl: this,
        signed: asn.tbsCertListRaw,
        algorithm: asn.signatureAlgorithm.algorithm,
        algorithmsAgree: asn.signatureAlgorithm.isEqual(asn.tbsCertList.signature),
      };
    }
  }
  readList = (der) => new ReadCrl(der).signedList();
  return readList;
}

/**
 * The revocation list in `pem`, after checking it was signed by `issuer`. Throws CrlError when it
 * cannot be read, is signed by another key or with a weak algorithm.
 */
export function readRevocationList(pem: string, issuer: X509Certificate): RevocationList {
  const base64 = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(pem)?.[1];
  if (base64 === undefined) throw new CrlError('holds no PEM CRL');
  const der = Buffer.from(base64.replace(/\s+/g, ''), 'base64');
  let list: SignedList;
  try {
    list = listReader()(der);
  } catch (error) {
    throw new CrlError(`cannot be read: ${(error as Error).message.split('\n')[0]}`);
  }
  const { crl, signed, algorithm, algorithmsAgree } = list;
  // The one thing the library lets by: bytes after the list, which nobody signed.
  let end: number;
  try {
    end = derElement(der, 0, 0x30).end;
  } catch (error) {
    throw new CrlError(`cannot be read: ${(error as Error).message}`);
  }
  if (end !== der.length) throw new CrlError('cannot be read: data after the list');
  const accepted = SIGNATURE_ALGORITHMS.get(algorithm);
  if (accepted === undefined) {
    throw new CrlError(`is signed with an algorithm not accepted (${algorithm})`);
  }
  if (!algorithmsAgree) {
    throw new CrlError('cannot be read: its two signature algorithms differ');
  }
  const keyType = issuer.publicKey.asymmetricKeyType;
  if (keyType !== accepted.key) {
    throw new CrlError(
      `is signed with ${algorithm}, an algorithm for ${accepted.key} keys, and the anchor's key is ${keyType}`,
    );
  }
  if (signed === undefined) throw new CrlError('cannot be read: no signed part');
  let signedBy: boolean;
  try {
    signedBy = verify(
      accepted.digest,
      new Uint8Array(signed),
      issuer.publicKey,
      new Uint8Array(crl.signature),
    );
  } catch {
    signedBy = false;
  }
  if (!signedBy) throw new CrlError(`is not signed by ${issuer.subject.split('\n').join(', ')}`);
  try {
    return {
      revoked: new Set(crl.entries.map((entry) => normalSerial(entry.serialNumber))),
      thisUpdate: crl.thisUpdate.getTime(),
      nextUpdate: crl.nextUpdate?.getTime(),
    };
  } catch (error) {
    throw new CrlError(`cannot be read: ${(error as Error).message.split('\n')[0]}`);
  }
}

/** A serial number as it is compared: uppercase hex, no leading zeros. */
export function normalSerial(hex: string): string {
  return hex.toUpperCase().replace(/^0+(?=.)/, '');
}
