// DS006: a certificate we would present must be within its validity and match its private key;
// DS101 warns 30 days before it expires.
import type { KeyObject, X509Certificate } from 'node:crypto';
import { certificateExpiry } from '../../certificate-expiry.js';
import type { Diagnostic } from '../../model.js';
import { error, warning } from '../diagnostics.js';
import { label, specAt } from '../manifest-objects.js';
import type { RuleContext } from './context.js';

export function checkCertificateValidity({ objects, material, now }: RuleContext): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  for (const certificate of objects.certificates) {
    const loaded = material.certificates.get(certificate);
    if (loaded === undefined) continue; // DS016 said why
    const { leaf } = loaded;
    const from = new Date(leaf.validFrom);
    const to = new Date(leaf.validTo);
    const expiry = certificateExpiry(to, now);
    // Computed only for a diagnostic: a position may cost parsing the file again.
    const at = () => specAt(certificate, ['certFile']);
    if (now < from) {
      diagnostics.push(
        error(
          'DS006',
          at(),
          `${label(certificate)} is not valid before ${from.toISOString()}`,
          'use a certificate that is valid now, or wait',
        ),
      );
    } else if (expiry.state === 'expired') {
      diagnostics.push(
        error(
          'DS006',
          at(),
          `${label(certificate)} expired on ${to.toISOString()}`,
          'renew it and point certFile and keyFile at the new files',
        ),
      );
    } else if (expiry.state === 'expiring') {
      diagnostics.push(
        warning(
          'DS101',
          at(),
          `${label(certificate)} expires in ${expiry.days} day(s), on ${to.toISOString()}`,
          'renew it before partners refuse it',
        ),
      );
    }
    if (!keyMatches(loaded.leaf, loaded.key)) {
      diagnostics.push(
        error(
          'DS006',
          specAt(certificate, ['keyFile']),
          `${label(certificate)}: the private key in keyFile does not match the certificate in certFile`,
          'point keyFile at the key the certificate was issued for',
        ),
      );
    }
  }
  return diagnostics;
}

function keyMatches(certificate: X509Certificate, key: KeyObject): boolean {
  try {
    return certificate.checkPrivateKey(key);
  } catch {
    return false; // a key of another type (EC for an RSA certificate) does not match either
  }
}
