// DS014: a connector cannot do domain security and at once allow plaintext; requireTls may only
// be left out (it then follows domainSecure) or be true.
import type { Diagnostic } from '../../model.js';
import { error } from '../diagnostics.js';
import { label, specAt, type ManifestObject } from '../manifest-objects.js';
import type { RuleContext } from './context.js';

export function checkRequireTls({ objects }: RuleContext): Diagnostic[] {
  const connectors: ManifestObject<{ domainSecure: boolean; requireTls?: boolean }>[] = [
    ...objects.sendConnectors,
    ...objects.receiveConnectors,
  ];
  return connectors
    .filter((connector) => connector.spec.domainSecure && connector.spec.requireTls === false)
    .map((connector) =>
      error(
        'DS014',
        specAt(connector, ['requireTls']),
        `${label(connector)} has domainSecure: true and requireTls: false`,
        'domain security implies TLS: remove requireTls (it follows domainSecure) or set it to true',
      ),
    );
}
