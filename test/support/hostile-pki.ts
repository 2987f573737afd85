// Hostile certificates for trust-attack tests: what an attacker, or a careless CA, could present
// as partner adatum.com. Made at test time by the lab PKI (node-forge) beside the lab's own CAs.
import forge from 'node-forge';
import {
  createCertificateAuthority,
  createRevocationList,
  issueCertificate,
  type CertificateAuthority,
  type IssuedCertificate,
  type LeafOptions,
} from '../../src/pki/lab.js';
import { lab } from './lab.js';

const DAY = 86_400_000;

/** A certificate to present, its PEM being the leaf followed by the chain the attacker sends. */
export interface Presented extends IssuedCertificate {
  /** What the attack tries. */
  attack: string;
}

export interface HostileLab {
  /** Another partner (fabrikam.com) and its own root, trusted for fabrikam.com only. */
  fabrikamRoot: CertificateAuthority;
  /** adatum's second root, allowed one intermediate (pathLength 1), trusted for adatum.com. */
  adatumIssuingRoot: CertificateAuthority;
  /** A legitimate chain: leaf under an intermediate under adatumIssuingRoot. */
  viaIntermediate: Presented;
  /** A legitimate certificate whose names differ from the partner domain only in case and dot. */
  upperCaseTrailingDot: Presented;
  /** adatum root's CRL, revoking the certificate of the attack "a revoked certificate". */
  adatumRootCrl: string;
  /** A certificate that is only for TLS clients (EKU clientAuth): no server may present it. */
  clientOnly: Presented;
  /** Every attack, each refused in both directions. */
  attacks: Presented[];
  /** Attacks that only a partner with certificateNameMatch: subdomain could fall for. */
  subdomainAttacks: Presented[];
  /**
   * Chains under adatumIssuingRoot that OpenSSL refuses for both TLS purposes, while the code it
   * reports for a client is INVALID_PURPOSE (or one hidden behind it): a CA whose EKU excludes
   * TLS, a leaf keyUsage without digitalSignature, an unknown critical extension.
   */
  purposeAttacks: Presented[];
}

let cached: HostileLab | undefined;

/** One hostile lab per test process (RSA keys take a moment; the certificates are read-only). */
export function hostileLab(): HostileLab {
  if (cached !== undefined) return cached;
  const { adatumRoot } = lab();
  const adatum = (attack: string, options: Partial<LeafOptions> = {}, issuer = adatumRoot) =>
    presented(attack, issueCertificate(issuer, { ...ADATUM, ...options }));

  const fabrikamRoot = createCertificateAuthority({
    commonName: 'Fabrikam Root CA',
    organization: 'Fabrikam',
    pathLength: 0,
  });
  const adatumIssuingRoot = createCertificateAuthority({
    commonName: 'Adatum Issuing Root CA',
    organization: 'Adatum',
    pathLength: 1,
  });
  const goodIntermediate = intermediate(adatumIssuingRoot, 'Adatum Issuing CA 1');

  // An intermediate that is a plain leaf (basicConstraints CA:false) signing a certificate.
  const notCa = asAuthority(
    issueCertificate(adatumRoot, { commonName: 'Adatum Mail Gateway', isCa: false }),
    'Adatum Mail Gateway',
  );
  // A CA below adatum's root, whose pathLength 0 forbids any intermediate.
  const beyondPathLength = intermediate(adatumRoot, 'Adatum Rogue Sub CA');
  // A CA with adatum root's very name, signed by another key: only the signature tells them apart.
  const impostorRoot = createCertificateAuthority({
    commonName: 'Adatum Root CA',
    organization: 'Adatum',
    pathLength: 0,
  });
  const sha1Intermediate = intermediate(adatumIssuingRoot, 'Adatum SHA-1 CA', 'sha1');
  // A self-signed leaf naming adatum.com: its own issuer.
  const selfSigned = createCertificateAuthority({ commonName: 'adatum.com' });

  const revoked = adatum('a revoked certificate');
  const attacks: Presented[] = [
    revoked,
    presented(
      'a certificate from a CA nobody trusts',
      issueCertificate(lab().strangerRoot, ADATUM),
    ),
    presented('a self-signed certificate naming adatum.com', selfSigned),
    adatum('a certificate from another partner’s CA claiming adatum.com', {}, fabrikamRoot),
    withChain(
      adatum('a CA with the anchor’s name but another key', {}, impostorRoot),
      impostorRoot,
    ),
    withChain(adatum('a chain through an intermediate that is not a CA', {}, notCa), notCa),
    withChain(
      adatum('a chain through a sub-CA the root’s pathLength forbids', {}, beyondPathLength),
      beyondPathLength,
    ),
    withChain(
      adatum(
        'a serverAuth-only certificate through a sub-CA the root’s pathLength forbids',
        { extendedKeyUsage: ['serverAuth'] },
        beyondPathLength,
      ),
      beyondPathLength,
    ),
    adatum('an expired certificate', {
      notBefore: new Date(Date.now() - 30 * DAY),
      notAfter: new Date(Date.now() - DAY),
    }),
    adatum('a certificate not yet valid', {
      notBefore: new Date(Date.now() + DAY),
      notAfter: new Date(Date.now() + 30 * DAY),
    }),
    adatum('a certificate naming another domain', {
      commonName: 'mail.contoso.com',
      dnsNames: ['mail.contoso.com'],
    }),
    adatum('a certificate naming only hosts below adatum.com', {
      commonName: 'mail.adatum.com',
      dnsNames: ['mail.adatum.com'],
    }),
    adatum('a wildcard *.adatum.com (domain match wants adatum.com itself)', {
      commonName: '*.adatum.com',
      dnsNames: ['*.adatum.com'],
    }),
    adatum('adatum.com with two trailing dots', {
      commonName: 'adatum.com..',
      dnsNames: ['adatum.com..'],
    }),
    adatum('adatum.com as a label of another domain', {
      commonName: 'adatum.com.evil.example',
      dnsNames: ['adatum.com.evil.example', 'evil-adatum.com', 'xadatum.com'],
    }),
    adatum('an IDN homograph of adatum.com (Cyrillic a)', {
      commonName: 'xn--datum-3ve.com',
      dnsNames: ['xn--datum-3ve.com'],
    }),
    adatum('a subject CN in full-width letters that IDNA maps to adatum.com', {
      commonName: forge.util.encodeUtf8('ａｄａｔｕｍ.com'),
      dnsNames: [],
    }),
    adatum('a SAN with a zero-width space that IDNA drops', {
      commonName: 'adatum',
      dnsNames: [forge.util.encodeUtf8('adatum.com\u200b')],
    }),
    adatum('percent-escapes that URL host parsing decodes to adatum.com', {
      commonName: '%61datum.com',
      dnsNames: ['%61datum.com', 'adatum%2ecom'],
    }),
    adatum('a 1024-bit RSA key', { keyBits: 1024 }),
    adatum('a 1024-bit RSA key with a serverAuth-only EKU', {
      keyBits: 1024,
      extendedKeyUsage: ['serverAuth'],
    }),
    adatum('a SHA-1 signature on the certificate', { hash: 'sha1' }),
    adatum('a SHA-1 signature on a serverAuth-only certificate', {
      hash: 'sha1',
      extendedKeyUsage: ['serverAuth'],
    }),
    withChain(
      adatum('a chain through a SHA-1 signed intermediate', {}, sha1Intermediate),
      sha1Intermediate,
    ),
  ];
  const subdomainAttacks: Presented[] = [
    adatum('a wildcard two labels deep (*.*.adatum.com)', {
      commonName: '*.*.adatum.com',
      dnsNames: ['*.*.adatum.com'],
    }),
    adatum('a wildcard below a host (*.mail.adatum.com)', {
      commonName: '*.mail.adatum.com',
      dnsNames: ['*.mail.adatum.com'],
    }),
    adatum('a host two labels below (a.mail.adatum.com)', {
      commonName: 'a.mail.adatum.com',
      dnsNames: ['a.mail.adatum.com'],
    }),
    adatum('a partial-label wildcard (mail*.adatum.com)', {
      commonName: 'mail*.adatum.com',
      dnsNames: ['mail*.adatum.com'],
    }),
  ];
  const ecdsa = { keyType: 'ecdsa-p256' } as const;
  const emailCa = intermediate(adatumIssuingRoot, 'Adatum Mail Signing CA', 'sha256', {
    ...ecdsa,
    extendedKeyUsage: ['emailProtection'],
  });
  const codeSigningCa = intermediate(adatumIssuingRoot, 'Adatum Code Signing CA', 'sha256', {
    ...ecdsa,
    extendedKeyUsage: ['codeSigning'],
  });
  const criticalCa = intermediate(adatumIssuingRoot, 'Adatum Extended CA', 'sha256', {
    ...ecdsa,
    extensions: [UNKNOWN_CRITICAL],
  });
  const purposeAttacks: Presented[] = [
    withChain(
      adatum('a chain through a sub-CA whose EKU is emailProtection only', ecdsa, emailCa),
      emailCa,
    ),
    withChain(
      adatum(
        'a serverAuth-only certificate through a sub-CA whose EKU is codeSigning only',
        { ...ecdsa, extendedKeyUsage: ['serverAuth'] },
        codeSigningCa,
      ),
      codeSigningCa,
    ),
    adatum(
      'a certificate whose keyUsage is keyCertSign only',
      {
        ...ecdsa,
        keyUsage: ['keyCertSign'],
      },
      adatumIssuingRoot,
    ),
    adatum(
      'an ECDSA certificate whose keyUsage is keyEncipherment and dataEncipherment',
      {
        ...ecdsa,
        keyUsage: ['keyEncipherment', 'dataEncipherment'],
      },
      adatumIssuingRoot,
    ),
    adatum(
      'a certificate with an unknown critical extension',
      {
        ...ecdsa,
        extensions: [UNKNOWN_CRITICAL],
      },
      adatumIssuingRoot,
    ),
    withChain(
      adatum('a chain through a sub-CA with an unknown critical extension', ecdsa, criticalCa),
      criticalCa,
    ),
  ];
  cached = {
    purposeAttacks,
    adatumRootCrl: createRevocationList(adatumRoot, { revoked: [revoked.certPem] }),
    clientOnly: adatum('a certificate for TLS clients only', { extendedKeyUsage: ['clientAuth'] }),
    fabrikamRoot,
    adatumIssuingRoot,
    viaIntermediate: withChain(
      adatum('a leaf under a proper intermediate', {}, goodIntermediate),
      goodIntermediate,
    ),
    upperCaseTrailingDot: adatum('names in upper case with a trailing dot', {
      commonName: 'MAIL.ADATUM.COM.',
      dnsNames: ['MAIL.ADATUM.COM.', 'ADATUM.COM.'],
    }),
    attacks,
    subdomainAttacks,
  };
  return cached;
}

const ADATUM: LeafOptions = {
  commonName: 'mail.adatum.com',
  dnsNames: ['mail.adatum.com', 'adatum.com'],
};

function presented(attack: string, issued: IssuedCertificate): Presented {
  return { attack, ...issued };
}

/** An extension no verifier knows, marked critical: its value is a DER NULL. */
const UNKNOWN_CRITICAL = { oid: '1.2.3.4', critical: true, value: Buffer.from([0x05, 0x00]) };

function intermediate(
  issuer: CertificateAuthority,
  commonName: string,
  hash: 'sha256' | 'sha1' = 'sha256',
  options: Partial<LeafOptions> = {},
): CertificateAuthority {
  const issued = issueCertificate(issuer, {
    commonName,
    organization: 'Adatum',
    isCa: true,
    extendedKeyUsage: null,
    hash,
    ...options,
  });
  return asAuthority(issued, commonName);
}

function asAuthority(issued: IssuedCertificate, commonName: string): CertificateAuthority {
  return { ...issued, commonName };
}

/** The leaf followed by the chain certificate the attacker sends with it. */
function withChain(leaf: Presented, chain: IssuedCertificate): Presented {
  return { ...leaf, certPem: `${leaf.certPem.trimEnd()}\n${chain.certPem}` };
}
