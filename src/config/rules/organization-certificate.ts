// DS005: the organization certificate must carry the names partners check: our EHLO hostname and,
// once any partner is domain-secure, every accepted domain. DS105 warns when it cannot
// authenticate as a client to partners that insist on clientAuth.
import type { Diagnostic } from '../../model.js';
import { certificateDnsNames, coversHost, namesDomain } from '../../certificate-names.js';
import { error, warning } from '../diagnostics.js';
import { label, specAt, specValueAt } from '../manifest-objects.js';
import { organizationCertificate, theOrganization, type RuleContext } from './context.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_USAGE = '2.5.29.37.0';
const DS005_HINT =
  'partners check the certificate against our domain; `domsec certs` issues one with both';

export function checkOrganizationCertificate(context: RuleContext): Diagnostic[] {
  const organization = theOrganization(context);
  const certificate = organizationCertificate(context);
  const material = certificate && context.material.certificates.get(certificate);
  if (organization === undefined || certificate === undefined || material === undefined) return [];

  const diagnostics: Diagnostic[] = [];
  const names = certificateDnsNames(material.leaf);
  const shown = names.length > 0 ? names.join(', ') : 'none';
  const { hostname, acceptedDomains } = organization.spec;
  if (!coversHost(names, hostname)) {
    diagnostics.push(
      error(
        'DS005',
        specValueAt(organization, ['hostname']),
        `${label(organization)}: hostname ${hostname} is not named by ${label(certificate)} (its names: ${shown})`,
        DS005_HINT,
      ),
    );
  }
  const securePartners = context.objects.partners.filter(
    (p) => p.spec.domainSecure.send || p.spec.domainSecure.receive,
  );
  if (securePartners.length > 0) {
    acceptedDomains.forEach((domain, index) => {
      if (namesDomain(names, domain)) return;
      diagnostics.push(
        error(
          'DS005',
          specValueAt(organization, ['acceptedDomains', index]),
          `${label(organization)}: accepted domain ${domain} is not named by ${label(certificate)} (its names: ${shown}), and domain-secure partners such as ${label(securePartners[0] ?? certificate)} check it against the domain in MAIL FROM`,
          DS005_HINT,
        ),
      );
    });
  }

  const usages = material.leaf.keyUsage; // Extended Key Usage OIDs; undefined: any purpose
  if (usages !== undefined && !usages.includes(ANY_USAGE)) {
    if (!usages.includes(SERVER_AUTH)) {
      diagnostics.push(
        error(
          'DS006',
          specAt(certificate, ['certFile']),
          `${label(certificate)} is the organization certificate but its Extended Key Usage lacks serverAuth`,
          'we present it as a server and as a client: issue it with serverAuth and clientAuth',
        ),
      );
    }
    if (!usages.includes(CLIENT_AUTH)) {
      diagnostics.push(
        warning(
          'DS105',
          specAt(certificate, ['certFile']),
          `${label(certificate)} is the organization certificate but its Extended Key Usage lacks clientAuth: partners that verify client certificates with OpenSSL's defaults (Postfix, Node, domsec with clientCertificatePurpose: strict) refuse it when we send`,
          'public CAs stopped issuing clientAuth in 2026: get the certificate from a private CA your partners trust (`domsec certs` makes one for a lab) with serverAuth and clientAuth',
        ),
      );
    }
  }
  return diagnostics;
}
