// DS003 and DS004: a partner that is domain-secure in a direction needs a connector that does
// domain security in that direction, or the setting would silently do nothing.
import type { Diagnostic } from '../../model.js';
import { chooseSendConnector as selectConnector } from '../../address-spaces.js';
import { error } from '../diagnostics.js';
import { label, specAt } from '../manifest-objects.js';
import type { RuleContext } from './context.js';

export function checkPartnerConnectors({ objects, complete }: RuleContext): Diagnostic[] {
  if (!complete) return []; // the connector that is missing may be one that failed its schema
  const diagnostics: Diagnostic[] = [];
  const secureReceive = objects.receiveConnectors.some((connector) => connector.spec.domainSecure);
  for (const partner of objects.partners) {
    const { domain, domainSecure } = partner.spec;
    if (domainSecure.send) {
      const connector = selectConnector(objects.sendConnectors, domain);
      if (connector === undefined) {
        diagnostics.push(
          error(
            'DS003',
            specAt(partner, ['domainSecure', 'send']),
            `${label(partner)} has domainSecure.send but no SendConnector covers ${domain}`,
            `add or fix a send connector: one whose addressSpaces include ${domain}, with domainSecure: true`,
          ),
        );
      } else if (!connector.spec.domainSecure) {
        diagnostics.push(
          error(
            'DS003',
            specAt(partner, ['domainSecure', 'send']),
            `${label(partner)} has domainSecure.send but mail for ${domain} would go through ${label(connector)}, which has no domainSecure: true`,
            `add or fix a send connector: turn on domainSecure on ${label(connector)}, or add one for ${domain} with domainSecure: true`,
          ),
        );
      }
    }
    if (domainSecure.receive && !secureReceive) {
      diagnostics.push(
        error(
          'DS004',
          specAt(partner, ['domainSecure', 'receive']),
          `${label(partner)} has domainSecure.receive but no ReceiveConnector has domainSecure: true`,
          'add one: a ReceiveConnector with domainSecure: true and authMechanisms [tls] on the address partners connect to',
        ),
      );
    }
  }
  return diagnostics;
}
