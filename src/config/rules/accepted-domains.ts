// DS010: a domain is either ours (accepted) or a partner's, never both: mail for it would be
// delivered locally and sent to the partner at once.
import type { Diagnostic } from '../../model.js';
import { canonicalName } from '../../certificate-names.js';
import { error } from '../diagnostics.js';
import { label, specValueAt } from '../manifest-objects.js';
import type { RuleContext } from './context.js';

export function checkAcceptedDomains({ objects }: RuleContext): Diagnostic[] {
  const accepted = new Map(
    objects.organizations.flatMap((organization) =>
      organization.spec.acceptedDomains.map(
        (domain) => [canonicalName(domain), organization] as const,
      ),
    ),
  );
  return objects.partners.flatMap((partner) => {
    const organization = accepted.get(canonicalName(partner.spec.domain));
    if (organization === undefined) return [];
    return [
      error(
        'DS010',
        specValueAt(partner, ['domain']),
        `${label(partner)}: ${partner.spec.domain} is also an accepted domain of ${label(organization)}`,
        "a domain is ours or a partner's: remove it from one of them",
      ),
    ];
  });
}
