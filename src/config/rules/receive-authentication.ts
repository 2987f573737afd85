// DS002: a domain-secure receive connector must offer TLS, or no partner can present its
// certificate to it. DS018: one that requires TLS must offer it, or it can never take mail.
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

export function checkRequiredTlsOffered({ objects }: RuleContext): Diagnostic[] {
  return objects.receiveConnectors
    .filter(
      (connector) =>
        connector.spec.requireTls === true &&
        !connector.spec.domainSecure && // DS002 says it for a domain-secure one
        !connector.spec.authMechanisms.includes('tls'),
    )
    .map((connector) =>
      error(
        'DS018',
        specAt(connector, ['requireTls']),
        `${label(connector)} has requireTls: true but its authMechanisms lack \`tls\`: STARTTLS is not offered there, so every MAIL FROM would get 530 5.7.0`,
        'add `tls` to authMechanisms, or remove requireTls',
      ),
    );
}
