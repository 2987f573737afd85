// DS002: a domain-secure receive connector must offer TLS, or no partner can present its
// certificate to it.
import type { Diagnostic } from '../../model.js';
import { error } from '../diagnostics.js';
import { label, specAt } from '../manifest-objects.js';
import type { RuleContext } from './context.js';

export function checkReceiveAuthentication({ objects }: RuleContext): Diagnostic[] {
  return objects.receiveConnectors
    .filter(
      (connector) => connector.spec.domainSecure && !connector.spec.authMechanisms.includes('tls'),
    )
    .map((connector) =>
      error(
        'DS002',
        specAt(connector, ['authMechanisms']),
        `${label(connector)} has domainSecure: true but its authMechanisms lack \`tls\``,
        'add `tls`',
      ),
    );
}
