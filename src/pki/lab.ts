// The lab PKI: certificate authorities and organization certificates for labs, demos and tests.
// node-forge builds and signs the certificates; Node's crypto makes the keys (much faster), and
// signs ECDSA P-256 ones, which forge cannot: RSA stays the default.
import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign as signBytes,
  X509Certificate,
} from 'node:crypto';
import forge from 'node-forge';
import { derChildren, derElement, derEncode, derEncodeOid, derEncodeTime } from '../der.js';

export type ExtendedKeyUsage = 'serverAuth' | 'clientAuth';
/** An Extended Key Usage by name, or any other by dotted OID: for CAs and hostile certificates. */
export type KeyPurpose =
  | ExtendedKeyUsage
  | 'emailProtection'
  | 'codeSigning'
  | 'anyExtendedKeyUsage'
  | `${number}.${number}.${string}`;
/** The keyUsage bits (RFC 5280 §4.2.1.3) by their names. */
export type KeyUsageBit =
  | 'digitalSignature'
  | 'nonRepudiation'
  | 'keyEncipherment'
  | 'dataEncipherment'
  | 'keyAgreement'
  | 'keyCertSign'
  | 'cRLSign';
/** Any extension, as its OID, criticality and the DER its extnValue OCTET STRING holds. */
export interface CertificateExtension {
  oid: string;
  critical: boolean;
  value: Uint8Array;
}
/** 'ecdsa-p256': smaller and several times cheaper per handshake than RSA. */
export type KeyType = 'rsa' | 'ecdsa-p256';

export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
  /** SHA-256 fingerprint, as X509Certificate.fingerprint256 prints it. */
  fingerprint: string;
}

export interface CertificateAuthority extends IssuedCertificate {
  commonName: string;
}

interface Validity {
  notBefore?: Date;
  notAfter?: Date;
}

export interface AuthorityOptions extends Validity {
  commonName: string;
  organization?: string;
  /** basicConstraints pathLenConstraint; 0 lets it sign only end-entity certificates. */
  pathLength?: number;
  keyBits?: number;
  hash?: 'sha256' | 'sha1';
  keyType?: KeyType;
  /** An Extended Key Usage on the CA itself (none by default), as some CAs constrain theirs. */
  extendedKeyUsage?: KeyPurpose[];
  /** Default keyCertSign and cRLSign; null leaves the extension out. */
  keyUsage?: KeyUsageBit[] | null;
  /** Appended after the usual ones. */
  extensions?: CertificateExtension[];
}

export interface LeafOptions extends Validity {
  commonName: string;
  organization?: string;
  /** SAN dNSName entries; none gives a certificate named by its subject CN only. */
  dnsNames?: string[];
  /** null leaves the extension out (a certificate usable for any purpose). */
  extendedKeyUsage?: KeyPurpose[] | null;
  /** Mark it a CA (an intermediate); by default a leaf. */
  isCa?: boolean;
  /** basicConstraints pathLenConstraint of a CA (isCa); none by default. */
  pathLength?: number;
  keyBits?: number;
  hash?: 'sha256' | 'sha1';
  keyType?: KeyType;
  /**
   * Default: keyCertSign and cRLSign for a CA, digitalSignature (and keyEncipherment for RSA)
   * for a leaf; null leaves the extension out.
   */
  keyUsage?: KeyUsageBit[] | null;
  /** Appended after the usual ones. */
  extensions?: CertificateExtension[];
}

const DAY = 86_400_000;

export function createCertificateAuthority(options: AuthorityOptions): CertificateAuthority {
  if (options.keyType === 'ecdsa-p256') {
    const key = newEcKey();
    const cert = baseCertificate(PLACEHOLDER_KEY, options);
    const subject = distinguishedName(options.commonName, options.organization);
    cert.setSubject(subject);
    cert.setIssuer(subject);
    cert.setExtensions(authorityExtensions(options, keyIdentifierExtension(key.keyIdentifier)));
    const certPem = signWithCrypto(cert, key, { keyPem: key.keyPem });
    return { commonName: options.commonName, ...finishPem(certPem, key.keyPem) };
  }
  const keys = newKeyPair(options.keyBits ?? 2048);
  const cert = baseCertificate(keys.publicKey, options);
  const subject = distinguishedName(options.commonName, options.organization);
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions(authorityExtensions(options, { name: 'subjectKeyIdentifier' }));
  cert.sign(keys.privateKey, digest(options.hash));
  return { commonName: options.commonName, ...finish(cert, keys.keyPem) };
}

export function issueCertificate(
  authority: CertificateAuthority,
  options: LeafOptions,
): IssuedCertificate {
  const ecdsa = options.keyType === 'ecdsa-p256' || !isRsa(authority.certPem);
  const ecKey = options.keyType === 'ecdsa-p256' ? newEcKey() : undefined;
  const keys = ecKey === undefined ? newKeyPair(options.keyBits ?? 2048) : undefined;
  const cert = baseCertificate(keys?.publicKey ?? PLACEHOLDER_KEY, options);
  cert.setSubject(distinguishedName(options.commonName, options.organization));
  // forge parses RSA certificates only: the issuer's name is spliced in as DER when signing.
  if (!ecdsa) cert.setIssuer(forge.pki.certificateFromPem(authority.certPem).subject.attributes);
  const eku: KeyPurpose[] | null =
    options.extendedKeyUsage === undefined
      ? ['serverAuth', 'clientAuth']
      : options.extendedKeyUsage;
  const defaultKeyUsage: KeyUsageBit[] =
    options.isCa === true
      ? ['keyCertSign', 'cRLSign']
      : ecKey === undefined
        ? ['digitalSignature', 'keyEncipherment']
        : ['digitalSignature']; // no RSA key transport
  const extensions: object[] = [
    {
      name: 'basicConstraints',
      cA: options.isCa === true,
      critical: true,
      ...(options.isCa === true ? pathLength(options.pathLength) : {}),
    },
    ...keyUsageExtension(options.keyUsage === undefined ? defaultKeyUsage : options.keyUsage),
    ecKey === undefined
      ? { name: 'subjectKeyIdentifier' }
      : keyIdentifierExtension(ecKey.keyIdentifier),
    {
      name: 'authorityKeyIdentifier',
      keyIdentifier: forge.util.hexToBytes(keyIdentifier(authority.certPem)),
    },
  ];
  if (eku !== null) extensions.push(extendedKeyUsageExtension(eku));
  if (options.dnsNames !== undefined && options.dnsNames.length > 0) {
    extensions.push({
      name: 'subjectAltName',
      altNames: options.dnsNames.map((value) => ({ type: 2, value })),
    });
  }
  extensions.push(...(options.extensions ?? []).map(forgeExtension));
  cert.setExtensions(extensions);
  if (ecdsa) {
    const subjectKey = ecKey ?? { spkiDer: publicKeyDer(keys?.keyPem ?? '') };
    const certPem = signWithCrypto(cert, subjectKey, authority);
    return finishPem(certPem, ecKey?.keyPem ?? keys?.keyPem ?? '');
  }
  cert.sign(forge.pki.privateKeyFromPem(authority.keyPem), digest(options.hash));
  return finish(cert, keys?.keyPem ?? '');
}

function authorityExtensions(options: AuthorityOptions, keyIdentifier: object): object[] {
  return [
    { name: 'basicConstraints', cA: true, critical: true, ...pathLength(options.pathLength) },
    ...keyUsageExtension(
      options.keyUsage === undefined ? ['keyCertSign', 'cRLSign'] : options.keyUsage,
    ),
    keyIdentifier,
    ...(options.extendedKeyUsage === undefined
      ? []
      : [extendedKeyUsageExtension(options.extendedKeyUsage)]),
    ...(options.extensions ?? []).map(forgeExtension),
  ];
}

function keyUsageExtension(bits: KeyUsageBit[] | null): object[] {
  if (bits === null) return [];
  return [
    { name: 'keyUsage', critical: true, ...Object.fromEntries(bits.map((bit) => [bit, true])) },
  ];
}

/** forge knows the usual purposes by name; anyExtendedKeyUsage only by its OID. */
function extendedKeyUsageExtension(purposes: KeyPurpose[]): object {
  const keys = purposes.map((purpose) =>
    purpose === 'anyExtendedKeyUsage' ? ANY_EXTENDED_KEY_USAGE : purpose,
  );
  return { name: 'extKeyUsage', ...Object.fromEntries(keys.map((key) => [key, true])) };
}

/** forge takes a string value as the extnValue's DER, in its binary-string form. */
function forgeExtension(extension: CertificateExtension): object {
  return {
    id: extension.oid,
    critical: extension.critical,
    value: Buffer.from(extension.value).toString('binary'),
  };
}

const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';

function newKeyPair(bits: number): {
  publicKey: forge.pki.PublicKey;
  privateKey: forge.pki.rsa.PrivateKey;
  keyPem: string;
} {
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const forgeKey = forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey;
  return {
    privateKey: forgeKey,
    publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e),
    keyPem: privateKey,
  };
}

function baseCertificate(
  publicKey: forge.pki.PublicKey,
  validity: Validity,
): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A positive serial: the high bit cleared so DER does not read it as negative.
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  cert.serialNumber = serial.toString('hex');
  const now = Date.now();
  cert.validity.notBefore = validity.notBefore ?? new Date(now - DAY);
  cert.validity.notAfter = validity.notAfter ?? new Date(now + 365 * DAY);
  return cert;
}

function distinguishedName(
  commonName: string,
  organization?: string,
): forge.pki.CertificateField[] {
  const fields: forge.pki.CertificateField[] = [{ name: 'commonName', value: commonName }];
  if (organization !== undefined) fields.push({ name: 'organizationName', value: organization });
  return fields;
}

function digest(hash: 'sha256' | 'sha1' | undefined): forge.md.MessageDigest {
  return hash === 'sha1' ? forge.md.sha1.create() : forge.md.sha256.create();
}

function finish(cert: forge.pki.Certificate, keyPem: string): IssuedCertificate {
  return finishPem(forge.pki.certificateToPem(cert), keyPem);
}

function finishPem(certPem: string, keyPem: string): IssuedCertificate {
  return { certPem, keyPem, fingerprint: new X509Certificate(certPem).fingerprint256 };
}

// ---------------------------------------------------------------------------------------------
// ECDSA P-256: forge builds the TBSCertificate around a placeholder RSA key, the real public key
// (and the issuer's name) are spliced in as DER, and node:crypto signs the TBS bytes.

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
/** Only encoded, never used: any modulus will do. */
const PLACEHOLDER_KEY = forge.pki.setRsaPublicKey(
  new forge.jsbn.BigInteger('c0ffee'.repeat(16), 16),
  new forge.jsbn.BigInteger('65537', 10),
);

interface EcKey {
  keyPem: string;
  spkiDer: Buffer;
  keyIdentifier: string; // hex
}

function newEcKey(): EcKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', {
    namedCurve: 'prime256v1',
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'der' },
  });
  return { keyPem: privateKey, spkiDer: publicKey, keyIdentifier: spkiKeyIdentifier(publicKey) };
}

/** forge computes the identifier from the (placeholder) key unless the value is given as DER. */
function keyIdentifierExtension(hex: string): object {
  const { asn1 } = forge;
  const value = asn1.create(
    asn1.Class.UNIVERSAL,
    asn1.Type.OCTETSTRING,
    false,
    forge.util.hexToBytes(hex),
  );
  return { name: 'subjectKeyIdentifier', value };
}

function pathLength(value: number | undefined): { pathLenConstraint?: number } {
  return value === undefined ? {} : { pathLenConstraint: value };
}

function isRsa(certPem: string): boolean {
  return new X509Certificate(certPem).publicKey.asymmetricKeyType === 'rsa';
}

function publicKeyDer(keyPem: string): Buffer {
  return createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
}

/**
 * RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's bytes, which are the
 * PKCS#1 RSAPublicKey for RSA and the uncompressed point (the last 65 bytes) for P-256.
 */
function spkiKeyIdentifier(spkiDer: Buffer): string {
  const key = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
  const bits =
    key.asymmetricKeyType === 'rsa'
      ? key.export({ type: 'pkcs1', format: 'der' })
      : spkiDer.subarray(-65);
  return createHash('sha1').update(bits).digest('hex');
}

function keyIdentifier(certPem: string): string {
  return spkiKeyIdentifier(
    new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' }),
  );
}

/** Signs `cert` (built by forge) with the issuer's key; the issuer is the subject when self-signed. */
function signWithCrypto(
  cert: forge.pki.Certificate,
  subject: { spkiDer: Buffer },
  issuer: { keyPem: string; certPem?: string },
): string {
  const asn1 = forge.asn1;
  const issuerIsEc = issuer.certPem === undefined || !isRsa(issuer.certPem);
  const algorithm = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(
      asn1.Class.UNIVERSAL,
      asn1.Type.OID,
      false,
      asn1.oidToDer(issuerIsEc ? ECDSA_WITH_SHA256 : SHA256_WITH_RSA).getBytes(),
    ),
    ...(issuerIsEc ? [] : [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '')]),
  ]);
  cert.siginfo.algorithmOid = issuerIsEc ? ECDSA_WITH_SHA256 : SHA256_WITH_RSA;
  // In forge's runtime API (certificate.sign uses it), missing from its type definitions.
  const pki = forge.pki as unknown as {
    getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
  };
  const tbs = pki.getTBSCertificate(cert);
  const fields = tbs.value as forge.asn1.Asn1[];
  // [0] version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
  fields[2] = algorithm;
  if (issuer.certPem !== undefined) fields[3] = subjectName(issuer.certPem);
  fields[6] = asn1.fromDer(forge.util.createBuffer(subject.spkiDer.toString('binary')));
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary');
  const signature = signBytes('sha256', tbsDer, issuer.keyPem);
  const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    algorithm,
    asn1.create(
      asn1.Class.UNIVERSAL,
      asn1.Type.BITSTRING,
      false,
      `\u0000${signature.toString('binary')}`,
    ),
  ]);
  const der = asn1.toDer(certificate).getBytes();
  return forge.pem.encode({ type: 'CERTIFICATE', body: der });
}

/** The subject Name of a certificate as ASN.1, whatever its key type. */
function subjectName(certPem: string): forge.asn1.Asn1 {
  const der = new X509Certificate(certPem).raw.toString('binary');
  const certificate = forge.asn1.fromDer(forge.util.createBuffer(der));
  const tbs = (certificate.value as forge.asn1.Asn1[])[0];
  const name = (tbs?.value as forge.asn1.Asn1[] | undefined)?.[5];
  if (name === undefined) throw new Error('certificate without a subject');
  return name;
}

// ---------------------------------------------------------------------------------------------
// Certificate revocation lists (v2), signed by a lab CA: forge cannot make them, so they are
// encoded here and signed with node:crypto.

export interface RevocationOptions {
  /** Certificates (PEM) the list revokes. */
  revoked: string[];
  thisUpdate?: Date;
  /** Default: a week after thisUpdate. */
  nextUpdate?: Date;
}

/** A PEM CRL issued by `authority`, revoking the given certificates. */
export function createRevocationList(
  authority: CertificateAuthority,
  options: RevocationOptions,
): string {
  const issuerCert = new X509Certificate(authority.certPem);
  const ec = issuerCert.publicKey.asymmetricKeyType === 'ec';
  const algorithm = derEncode(
    0x30,
    derEncodeOid(ec ? ECDSA_WITH_SHA256 : SHA256_WITH_RSA),
    ...(ec ? [] : [Buffer.from([0x05, 0x00])]),
  );
  const thisUpdate = options.thisUpdate ?? new Date(Date.now() - 60_000);
  const nextUpdate = options.nextUpdate ?? new Date(thisUpdate.getTime() + 7 * DAY);
  const entries = options.revoked.map((pem) =>
    derEncode(
      0x30,
      derEncode(0x02, serialBytes(new X509Certificate(pem).serialNumber)),
      derEncodeTime(thisUpdate),
    ),
  );
  const tbs = derEncode(
    0x30,
    derEncode(0x02, Buffer.from([1])), // v2
    algorithm,
    subjectDer(issuerCert),
    derEncodeTime(thisUpdate),
    derEncodeTime(nextUpdate),
    ...(entries.length === 0 ? [] : [derEncode(0x30, ...entries)]),
  );
  const signature = signBytes('sha256', tbs, authority.keyPem);
  const der = derEncode(0x30, tbs, algorithm, derEncode(0x03, Buffer.from([0]), signature));
  const base64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN X509 CRL-----\n${base64.trimEnd()}\n-----END X509 CRL-----\n`;
}

/** A positive INTEGER's content octets for a serial number in hex. */
function serialBytes(hex: string): Buffer {
  const bytes = Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex');
  return (bytes[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
}

/** The certificate's subject Name as DER, cut from its TBSCertificate. */
function subjectDer(cert: X509Certificate): Buffer {
  const der = cert.raw;
  const tbs = derElement(der, derElement(der, 0, 0x30).start, 0x30);
  const fields = derChildren(der, tbs);
  const subject = fields[fields[0]?.tag === 0xa0 ? 5 : 4];
  if (subject === undefined) throw new Error('certificate without a subject');
  return der.subarray(subject.offset, subject.end);
}
