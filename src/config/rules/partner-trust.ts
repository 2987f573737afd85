// DS013: a domain-secure partner needs something to verify its certificate against; DS106 warns
// of the looser `certificateNameMatch: subdomain`, DS103 of a receive-secure partner
// that may connect from anywhere.
import type { Diagnostic } from '../../model.js';
import { error, warning } from '../diagnostics.js';
import { label, specAt, specWritten } from '../manifest-objects.js';
import type { RuleContext } from './context.js';

export function checkPartnerTrust({ objects }: RuleContext): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  for (const partner of objects.partners) {
    const { domainSecure, trustAnchors, certificateNameMatch, remoteIPRanges } = partner.spec;
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
    if (domainSecure.receive && remoteIPRanges.length === 0) {
      diagnostics.push(
        warning(
          'DS103',
          specAt(partner, ['domainSecure', 'receive']),
          `${label(partner)} is receive-secure but accepts its certificate from any address (no remoteIPRanges)`,
          "list the ranges the partner's servers connect from in remoteIPRanges, so that a stolen certificate alone is not enough; they are also how a partner is known at connect (before TLS), to use the connections strangers cannot take during a flood",
        ),
      );
    }
    if (certificateNameMatch === 'subdomain') {
      diagnostics.push(
        warning(
          'DS106',
          specAt(partner, ['certificateNameMatch']),
          `${label(partner)} accepts a certificate that names any host one label below ${partner.spec.domain} (certificateNameMatch: subdomain)`,
          'the default `domain` expects the domain itself, or a name listed in certificateNames',
        ),
      );
    }
  }
  return diagnostics;
}
