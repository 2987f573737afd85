// The certificates of the story, made by the lab PKI at test time (never committed keys).
import {
  createCertificateAuthority,
  issueCertificate,
  type CertificateAuthority,
  type IssuedCertificate,
} from '../../src/pki/lab.js';

export interface Lab {
  adatumRoot: CertificateAuthority;
  adatumMail: IssuedCertificate; // mail.adatum.com + adatum.com, serverAuth + clientAuth
  treyRoot: CertificateAuthority;
  treyMail: IssuedCertificate; // mail.treyresearch.net + treyresearch.net
  strangerRoot: CertificateAuthority; // trusted by nobody
  strangerAdatum: IssuedCertificate; // claims adatum.com, issued by the stranger
  adatumExpired: IssuedCertificate; // adatum's CA, expired yesterday
  adatumWrongName: IssuedCertificate; // adatum's CA, names mail.contoso.com only
}

const DAY = 86_400_000;
let cached: Lab | undefined;

/** One lab per test process: RSA keys take a moment, and the certificates are read-only. */
export function lab(): Lab {
  if (cached !== undefined) return cached;
  const adatumRoot = createCertificateAuthority({
    commonName: 'Adatum Root CA',
    organization: 'Adatum',
    pathLength: 0,
  });
  const treyRoot = createCertificateAuthority({
    commonName: 'Trey Research Root CA',
    organization: 'Trey Research',
    pathLength: 0,
  });
  const strangerRoot = createCertificateAuthority({ commonName: 'Stranger Root CA' });
  cached = {
    adatumRoot,
    adatumMail: issueCertificate(adatumRoot, {
      commonName: 'mail.adatum.com',
      dnsNames: ['mail.adatum.com', 'adatum.com'],
    }),
    treyRoot,
    treyMail: issueCertificate(treyRoot, {
      commonName: 'mail.treyresearch.net',
      dnsNames: ['mail.treyresearch.net', 'treyresearch.net'],
    }),
    strangerRoot,
    strangerAdatum: issueCertificate(strangerRoot, {
      commonName: 'mail.adatum.com',
      dnsNames: ['mail.adatum.com', 'adatum.com'],
    }),
    adatumExpired: issueCertificate(adatumRoot, {
      commonName: 'mail.adatum.com',
      dnsNames: ['mail.adatum.com', 'adatum.com'],
      notBefore: new Date(Date.now() - 30 * DAY),
      notAfter: new Date(Date.now() - DAY),
    }),
    adatumWrongName: issueCertificate(adatumRoot, {
      commonName: 'mail.contoso.com',
      dnsNames: ['mail.contoso.com'],
    }),
  };
  return cached;
}
