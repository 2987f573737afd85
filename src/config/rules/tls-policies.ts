// DS020 and DS021: TLS policies that cannot work as written. `dane: require` without a validating
// resolver can never be met (no answer is ever DNSSEC-secure, so every message to those domains
// would wait); two policies with one address space leave a domain's verification to chance.
import type { Diagnostic } from '../../model.js';
import { canonicalName } from '../../certificate-names.js';
import { error } from '../diagnostics.js';
import { label, specValueAt, type ManifestObject } from '../manifest-objects.js';
import { theOrganization, type RuleContext } from './context.js';

export function checkTlsPolicies(context: RuleContext): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  const organization = theOrganization(context);
  const validating = organization?.spec.resolver.validating === true;
  const seen = new Map<string, ManifestObject>();
  for (const policy of context.objects.tlsPolicies) {
    if (policy.spec.dane === 'require' && organization !== undefined && !validating)
      diagnostics.push(
        error(
          'DS020',
          specValueAt(policy, ['dane']),
          `${label(policy)} requires DANE, but ${label(organization)} has no validating resolver (resolver.validating): no answer would be DNSSEC-secure and all mail to ${policy.spec.addressSpaces.join(', ')} would wait`,
          'set resolver.validating: true with servers that validate DNSSEC (a local Unbound), or use dane: optional',
        ),
      );
    policy.spec.addressSpaces.forEach((space, index) => {
      const key = space === '*' ? '*' : canonicalName(space);
      const first = seen.get(key);
      // Two policies with one name are DS008's to report, not an overlap.
      if (first === undefined || first.name === policy.name) {
        seen.set(key, policy);
        return;
      }
      diagnostics.push(
        error(
          'DS021',
          specValueAt(policy, ['addressSpaces', index]),
          `${label(policy)} and ${label(first)} both cover ${space}: either could decide how its TLS is verified`,
          'remove the address space from one of them, or make one more specific',
        ),
      );
    });
  }
  return diagnostics;
}
