// DS013: a domain-secure partner needs something to verify its certificate against; DS106 warns
// of the looser `certificateNameMatch: subdomain` (SPEC §5).
import type { Diagnostic } from '../../model.js';
import { error, warning } from '../diagnostics.js';
import { label, specAt, specWritten } from '../manifest-objects.js';
import type { RuleContext } from './context.js';

export function checkPartnerTrust({ objects }: RuleContext): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  for (const partner of objects.partners) {
    const { domainSecure, trustAnchors, certificateNameMatch } = partner.spec;
    if ((domainSecure.send || domainSecure.receive) && trustAnchors.length === 0) {
      const at = specWritten(partner, ['trustAnchors'])
        ? specAt(partner, ['trustAnchors'])
        : specAt(partner, ['domainSecure']);
      diagnostics.push(
        error(
          'DS013',
          at,
          `${label(partner)} is domain-secure but has no trust anchor to verify its certificate`,
          'name one, or `system`',
        ),
      );
    }
    if (certificateNameMatch === 'subdomain') {
      diagnostics.push(
        warning(
          'DS106',
          specAt(partner, ['certificateNameMatch']),
          `${label(partner)} accepts a certificate that names any host one label below ${partner.spec.domain} (certificateNameMatch: subdomain)`,
          'the default `domain` expects the domain itself, or a name listed in certificateNames (SPEC §5)',
        ),
      );
    }
  }
  return diagnostics;
}
