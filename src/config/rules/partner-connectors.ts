// DS003 and DS004: a partner that is domain-secure in a direction needs a connector that does
// domain security in that direction, or the setting would silently do nothing.
import type { Diagnostic } from '../../model.js';
import { chooseSendConnector } from '../../address-spaces.js';
import { canonicalName } from '../../certificate-names.js';
import { error } from '../diagnostics.js';
import {
  label,
  specAt,
  type ManifestObject,
  type SendConnectorManifest,
} from '../manifest-objects.js';
import type { RuleContext } from './context.js';

type SendConnector = ManifestObject<SendConnectorManifest>;

/**
 * The connectors' address spaces indexed by their canonical form, so that choosing the connector
 * for one partner looks at the few spaces that can match its domain (its exact name, `*.` of each
 * parent, `*`) instead of all of them: with one connector listing every partner, the plain
 * chooseSendConnector per partner was quadratic (10,000 partners took over a minute). The choice
 * itself is still the shared chooseSendConnector, over those candidate spaces only.
 */
function routingIndex(
  connectors: readonly SendConnector[],
): (domain: string) => SendConnector | undefined {
  const spaces = new Map<string, Map<SendConnector, string[]>>();
  for (const connector of connectors) {
    for (const space of connector.spec.addressSpaces) {
      const key = space.trim() === '*' ? '*' : canonicalName(space.trim());
      const byConnector = spaces.get(key) ?? new Map<SendConnector, string[]>();
      byConnector.set(connector, [...(byConnector.get(connector) ?? []), space]);
      spaces.set(key, byConnector);
    }
  }
  return (domain) => {
    const name = canonicalName(domain);
    const keys = ['*', name];
    for (let dot = name.indexOf('.'); dot !== -1; dot = name.indexOf('.', dot + 1)) {
      keys.push(`*.${name.slice(dot + 1)}`);
    }
    const candidates = new Map<SendConnector, string[]>();
    for (const key of keys) {
      for (const [connector, written] of spaces.get(key) ?? []) {
        candidates.set(connector, [...(candidates.get(connector) ?? []), ...written]);
      }
    }
    const views = new Map(
      [...candidates].map(([connector, addressSpaces]) => [
        { name: connector.name, spec: { addressSpaces, cost: connector.spec.cost } },
        connector,
      ]),
    );
    const chosen = chooseSendConnector([...views.keys()], domain);
    return chosen === undefined ? undefined : views.get(chosen);
  };
}

export function checkPartnerConnectors({ objects, complete }: RuleContext): Diagnostic[] {
  if (!complete) return []; // the connector that is missing may be one that failed its schema
  const diagnostics: Diagnostic[] = [];
  const secureReceive = objects.receiveConnectors.some((connector) => connector.spec.domainSecure);
  const selectConnector = routingIndex(objects.sendConnectors);
  for (const partner of objects.partners) {
    const { domain, domainSecure } = partner.spec;
    if (domainSecure.send) {
      const connector = selectConnector(domain);
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
