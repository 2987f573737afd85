// DS111: the Organization lets MTA-STS policy hosts be at internal addresses. The host is
// mta-sts.<domain>, named by the recipient domain's DNS: with this on, any domain we send to can
// have us make HTTPS requests to loopback or our own networks. Labs need it; production must not.
import type { Diagnostic } from '../../model.js';
import { warning } from '../diagnostics.js';
import { label, specValueAt } from '../manifest-objects.js';
import { theOrganization, type RuleContext } from './context.js';

export function checkInternalPolicyHosts(context: RuleContext): Diagnostic[] {
  const organization = theOrganization(context);
  if (organization?.spec.allowInternalPolicyHosts !== true) return [];
  return [
    warning(
      'DS111',
      specValueAt(organization, ['allowInternalPolicyHosts']),
      `${label(organization)} fetches MTA-STS policies from hosts at loopback, private and other internal addresses: a domain we send to can aim our HTTPS requests at our own services`,
      'remove allowInternalPolicyHosts outside a lab whose policy hosts run on this machine',
    ),
  ];
}
