// DS015: an RSA key under 2048 bits, or a certificate or trust anchor signed with SHA-1 or MD5.
// X509Certificate does not expose the signature algorithm, so its OID is read from the DER.
import { X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import type { Diagnostic } from '../../model.js';
import { error } from '../diagnostics.js';
import { label, specAt, type ManifestObject } from '../manifest-objects.js';
import type { RuleContext } from './context.js';

const MIN_RSA_BITS = 2048;

/** Signature algorithms whose hash is broken (collisions found), by OID. */
const WEAK_SIGNATURES = new Map([
  ['1.2.840.113549.1.1.2', 'MD2 with RSA'],
  ['1.2.840.113549.1.1.4', 'MD5 with RSA'],
  ['1.2.840.113549.1.1.5', 'SHA-1 with RSA'],
  ['1.3.14.3.2.29', 'SHA-1 with RSA'],
  ['1.2.840.10045.4.1', 'ECDSA with SHA-1'],
  ['1.2.840.10040.4.3', 'DSA with SHA-1'],
]);

/** The signatureAlgorithm OID of a certificate (RFC 5280 §4.1.1.2), or undefined. */
export function signatureAlgorithmOid(certificate: X509Certificate): string | undefined {
  try {
    const root = forge.asn1.fromDer(forge.util.createBuffer(certificate.raw.toString('binary')));
    const algorithm = (root.value as forge.asn1.Asn1[])[1];
    const oid = (algorithm?.value as forge.asn1.Asn1[] | undefined)?.[0];
    return typeof oid?.value === 'string' ? forge.asn1.derToOid(oid.value) : undefined;
  } catch {
    return undefined; // Node parsed it, so this does not happen; no verdict rather than a crash
  }
}

/** One verdict per parsed certificate: anchors that share a CA file share its object. */
const verdicts = new WeakMap<X509Certificate, string | undefined>();

/** Why the certificate is weak, or undefined. */
export function weakness(certificate: X509Certificate): string | undefined {
  if (verdicts.has(certificate)) return verdicts.get(certificate);
  const verdict = judge(certificate);
  verdicts.set(certificate, verdict);
  return verdict;
}

function judge(certificate: X509Certificate): string | undefined {
  const reasons: string[] = [];
  const details = certificate.publicKey.asymmetricKeyDetails;
  const bits = details?.modulusLength;
  const type = certificate.publicKey.asymmetricKeyType;
  if ((type === 'rsa' || type === 'rsa-pss') && bits !== undefined && bits < MIN_RSA_BITS) {
    reasons.push(`a ${bits}-bit RSA key`);
  }
  const oid = signatureAlgorithmOid(certificate);
  const weak = oid === undefined ? undefined : WEAK_SIGNATURES.get(oid);
  if (weak !== undefined) reasons.push(`a ${weak} signature`);
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
