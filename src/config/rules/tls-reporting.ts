// DS023 and DS110: how the TLS reports we send (RFC 8460) are signed. §3 asks for a DKIM
// signature "by the reporting domain" on every report sent by mail, and a recipient ignores one
// without: the signing domain must be ours (DS023), and a reporting block without a key leaves
// every report to a mailto: address unsent (DS110).
import type { Diagnostic } from '../../model.js';
import { domainName } from '../../domain-name.js';
import { error, warning } from '../diagnostics.js';
import { label, specAt, specValueAt } from '../manifest-objects.js';
import { theOrganization, type RuleContext } from './context.js';

export function checkTlsReporting(context: RuleContext): Diagnostic[] {
  const organization = theOrganization(context);
  const reporting = organization?.spec.tlsReporting;
  if (organization === undefined || reporting === undefined) return [];
  const dkim = reporting.dkim;
  if (dkim === undefined) {
    return [
      warning(
        'DS110',
        specAt(organization, ['tlsReporting']),
        `${label(organization)} has no tlsReporting.dkim: TLS reports to mailto: addresses are not sent (RFC 8460 §3 requires them DKIM-signed; recipients ignore unsigned ones)`,
        'add tlsReporting.dkim with a selector and an RSA keyFile, and publish the TXT record `domsec dns records` prints',
      ),
    ];
  }
  if (dkim.domain === undefined) return [];
  const signing = domainName(dkim.domain);
  const ours = organization.spec.acceptedDomains.flatMap((written) => {
    const accepted = domainName(written);
    return accepted === undefined ? [] : [accepted];
  });
  const covered =
    signing !== undefined &&
    ours.some(
      (accepted) =>
        accepted === signing ||
        // A parent of two labels or more: `com` is no organization's domain.
        (signing.includes('.') && accepted.endsWith(`.${signing}`)),
    );
  if (covered) return [];
  return [
    error(
      'DS023',
      specValueAt(organization, ['tlsReporting', 'dkim', 'domain']),
      `${label(organization)}: tlsReporting.dkim.domain ${dkim.domain} is neither an accepted domain nor a parent of one: reports must be signed by the reporting domain (RFC 8460 §3)`,
      'sign with one of acceptedDomains (or leave domain out: the first accepted domain signs)',
    ),
  ];
}
