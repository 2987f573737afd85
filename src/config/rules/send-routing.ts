// DS001: a domain-secure send connector must find the partner's own servers by MX; a smart host
// would stand between us and the partner, and its certificate is not the partner's.
import type { Diagnostic } from '../../model.js';
import { error } from '../diagnostics.js';
import { label, specAt } from '../manifest-objects.js';
import type { RuleContext } from './context.js';

export function checkSendRouting({ objects }: RuleContext): Diagnostic[] {
  return objects.sendConnectors
    .filter((connector) => connector.spec.domainSecure && 'smartHosts' in connector.spec.routing)
    .map((connector) =>
      error(
        'DS001',
        specAt(connector, ['routing', 'smartHosts']),
        `${label(connector)} routes through smartHosts with domainSecure: true`,
        "domain security verifies the partner's own server found by MX; a smart host hides it. Use `dnsMx`, or turn domain security off on this connector",
      ),
    );
}
