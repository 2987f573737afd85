// DS009: a trust anchor must be a CA certificate that can be parsed; DS102 warns of a trust anchor
// no partner names (trust that serves nobody, or a partner that forgot it).
import type { Diagnostic } from '../../model.js';
import { error, warning } from '../diagnostics.js';
import { label, nameAt, specAt } from '../manifest-objects.js';
import { closestName } from '../suggest.js';
import type { RuleContext } from './context.js';
import { SYSTEM_TRUST_ANCHOR } from './references.js';

export function checkTrustAnchors({ objects, material, complete }: RuleContext): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  const names = objects.trustAnchors.map((anchor) => anchor.name);
  const defined = new Set(names);
  // A misspelt reference (DS007 suggests this anchor) is a use: one report for one mistake.
  const used = new Set(
    objects.partners.flatMap((partner) =>
      partner.spec.trustAnchors.map((name) =>
        name === SYSTEM_TRUST_ANCHOR || defined.has(name) ? name : closestName(name, names),
      ),
    ),
  );
  for (const anchor of objects.trustAnchors) {
    const loaded = material.anchors.get(anchor);
    const field = anchor.spec.pemFile !== undefined ? 'pemFile' : 'pem';
    if (loaded?.inlineUnparsable === true) {
      diagnostics.push(
        error(
          'DS009',
          specAt(anchor, ['pem']),
          `${label(anchor)}: pem cannot be parsed as a certificate`,
          'paste the whole PEM, from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----',
        ),
      );
    } else if (loaded?.certificate !== undefined && !loaded.certificate.ca) {
      diagnostics.push(
        error(
          'DS009',
          specAt(anchor, [field]),
          `${label(anchor)}: the certificate in ${field} is not a CA certificate (basicConstraints CA:false)`,
          "name the partner's root or issuing CA, not its server certificate",
        ),
      );
    }
    if (complete && !used.has(anchor.name)) {
      diagnostics.push(
        warning(
          'DS102',
          nameAt(anchor),
          `${label(anchor)} is named by no PartnerDomain`,
          "add it to a partner's trustAnchors, or remove it",
        ),
      );
    }
  }
  return diagnostics;
}
