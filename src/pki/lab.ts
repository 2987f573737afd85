// The lab PKI: certificate authorities and organization certificates for labs, demos and tests.
// node-forge builds and signs the certificates; Node's crypto makes the RSA keys (much faster).
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import forge from 'node-forge';

export type ExtendedKeyUsage = 'serverAuth' | 'clientAuth';

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
}

export interface LeafOptions extends Validity {
  commonName: string;
  organization?: string;
  /** SAN dNSName entries; none gives a certificate named by its subject CN only. */
  dnsNames?: string[];
  /** null leaves the extension out (a certificate usable for any purpose). */
  extendedKeyUsage?: ExtendedKeyUsage[] | null;
  /** Mark it a CA (an intermediate); by default a leaf. */
  isCa?: boolean;
  keyBits?: number;
  hash?: 'sha256' | 'sha1';
}

const DAY = 86_400_000;

export function createCertificateAuthority(options: AuthorityOptions): CertificateAuthority {
  const keys = newKeyPair(options.keyBits ?? 2048);
  const cert = baseCertificate(keys.publicKey, options);
  const subject = distinguishedName(options.commonName, options.organization);
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    {
      name: 'basicConstraints',
      cA: true,
      critical: true,
      ...(options.pathLength === undefined ? {} : { pathLenConstraint: options.pathLength }),
    },
    { name: 'keyUsage', critical: true, keyCertSign: true, cRLSign: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, digest(options.hash));
  return { commonName: options.commonName, ...finish(cert, keys.keyPem) };
}

export function issueCertificate(
  authority: CertificateAuthority,
  options: LeafOptions,
): IssuedCertificate {
  const keys = newKeyPair(options.keyBits ?? 2048);
  const issuer = forge.pki.certificateFromPem(authority.certPem);
  const cert = baseCertificate(keys.publicKey, options);
  cert.setSubject(distinguishedName(options.commonName, options.organization));
  cert.setIssuer(issuer.subject.attributes);
  const eku =
    options.extendedKeyUsage === undefined
      ? ['serverAuth', 'clientAuth']
      : options.extendedKeyUsage;
  const extensions: object[] = [
    { name: 'basicConstraints', cA: options.isCa === true, critical: true },
    options.isCa === true
      ? { name: 'keyUsage', critical: true, keyCertSign: true, cRLSign: true }
      : { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true },
    { name: 'subjectKeyIdentifier' },
    {
      name: 'authorityKeyIdentifier',
      keyIdentifier: issuer.generateSubjectKeyIdentifier().getBytes(),
    },
  ];
  if (eku !== null) {
    extensions.push({
      name: 'extKeyUsage',
      ...Object.fromEntries(eku.map((usage) => [usage, true])),
    });
  }
  if (options.dnsNames !== undefined && options.dnsNames.length > 0) {
    extensions.push({
      name: 'subjectAltName',
      altNames: options.dnsNames.map((value) => ({ type: 2, value })),
    });
  }
  cert.setExtensions(extensions);
  cert.sign(forge.pki.privateKeyFromPem(authority.keyPem), digest(options.hash));
  return finish(cert, keys.keyPem);
}

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
  const certPem = forge.pki.certificateToPem(cert);
  return { certPem, keyPem, fingerprint: new X509Certificate(certPem).fingerprint256 };
}
