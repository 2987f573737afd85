// DS022: serving our MTA-STS policy (Organization mtaSts.listen) with a certificate that does not
// name mta-sts.<domain> for every accepted domain. Senders fetch the policy with PKIX
// verification of that name (RFC 8461 §3.3), so such a domain's policy could never be fetched.
import type { Diagnostic } from '../../model.js';
import { certificateDnsNames, coversHost } from '../../certificate-names.js';
import { error } from '../diagnostics.js';
import { label, specValueAt } from '../manifest-objects.js';
import { organizationCertificate, theOrganization, type RuleContext } from './context.js';

export function checkMtaStsListener(context: RuleContext): Diagnostic[] {
  const organization = theOrganization(context);
  const certificate = organizationCertificate(context);
  const material = certificate && context.material.certificates.get(certificate);
  if (organization === undefined || certificate === undefined || material === undefined) return [];
  const listen = organization.spec.mtaSts?.listen;
  if (listen === undefined) return [];
  const names = certificateDnsNames(material.leaf);
  const shown = names.length > 0 ? names.join(', ') : 'none';
  const diagnostics: Diagnostic[] = [];
  organization.spec.acceptedDomains.forEach((domain, index) => {
    const host = `mta-sts.${domain}`;
    if (coversHost(names, host)) return;
    diagnostics.push(
      error(
        'DS022',
        specValueAt(organization, ['acceptedDomains', index]),
        `${label(organization)} serves its MTA-STS policy on ${listen}, but ${label(certificate)} does not name ${host} (its names: ${shown}): senders verify that name and could not fetch the policy of ${domain}`,
        `add ${host} to the certificate's names (or *.${domain}), or remove mtaSts.listen and serve the policy elsewhere`,
      ),
    );
  });
  return diagnostics;
}
