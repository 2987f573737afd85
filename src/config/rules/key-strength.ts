// DS015: a key under 2048 bits RSA (or a weak curve), or a certificate or trust anchor signed with
// SHA-1 or MD5: the same verdicts the engine gives a partner's certificate.
import { X509Certificate } from 'node:crypto';
import { keyWeakness, signatureWeakness } from '../../certificate-strength.js';
import type { Diagnostic } from '../../model.js';
import { error } from '../diagnostics.js';
import { label, specAt, type ManifestObject } from '../manifest-objects.js';
import type { RuleContext } from './context.js';

/** One verdict per parsed certificate: anchors that share a CA file share its object. */
const verdicts = new WeakMap<X509Certificate, string | undefined>();

/** Why the certificate is weak, or undefined. */
export function weakness(certificate: X509Certificate): string | undefined {
  if (verdicts.has(certificate)) return verdicts.get(certificate);
  const verdict = judge(certificate);
  verdicts.set(certificate, verdict);
  return verdict;
}

/** The engine judges peers with the same functions (src/certificate-strength.ts). */
function judge(certificate: X509Certificate): string | undefined {
  const reasons = [keyWeakness(certificate), signatureWeakness(certificate)].filter(
    (reason) => reason !== undefined,
  );
  return reasons.length === 0 ? undefined : reasons.join(' and ');
}

export function checkKeyStrength({ objects, material }: RuleContext): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  const report = (object: ManifestObject, field: string, what: string, reason: string) => {
    diagnostics.push(
      error(
        'DS015',
        specAt(object, [field]),
        `${label(object)}: ${what} has ${reason}`,
        'issue it again with an RSA key of 2048 bits or more (or ECDSA P-256) signed with SHA-256; `domsec certs` does',
      ),
    );
  };
  for (const certificate of objects.certificates) {
    const loaded = material.certificates.get(certificate);
    if (loaded === undefined) continue; // DS016 said why
    const leafWeakness = weakness(loaded.leaf);
    if (leafWeakness !== undefined)
      report(certificate, 'certFile', 'the certificate', leafWeakness);
    for (const [index, pem] of loaded.chainPem.entries()) {
      const chainWeakness = weakness(new X509Certificate(pem));
      const what = `chain certificate ${index + 1}`;
      if (chainWeakness !== undefined) report(certificate, 'certFile', what, chainWeakness);
    }
  }
  for (const anchor of objects.trustAnchors) {
    const loaded = material.anchors.get(anchor)?.certificate;
    if (loaded === undefined) continue;
    const anchorWeakness = weakness(loaded);
    const field = anchor.spec.pemFile !== undefined ? 'pemFile' : 'pem';
    if (anchorWeakness !== undefined) report(anchor, field, 'the CA certificate', anchorWeakness);
  }
  return diagnostics;
}
