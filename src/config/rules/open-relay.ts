// DS019: a connector that permits relay to clients beyond loopback and private networks is an open
// relay: relay needs no authentication (authMechanisms has none a client must pass), so every
// address in its remoteIPRanges may send anywhere through us. DS107: relay to private networks.
import type { Diagnostic } from '../../model.js';
import { bindingOnLoopback, relayReach } from '../../relay-ranges.js';
import { error, warning } from '../diagnostics.js';
import {
  label,
  specAt,
  specWritten,
  type ManifestObject,
  type ReceiveConnectorManifest,
} from '../manifest-objects.js';
import type { RuleContext } from './context.js';

export function checkOpenRelay({ objects }: RuleContext): Diagnostic[] {
  return objects.receiveConnectors.flatMap((connector) => {
    if (!connector.spec.permitRelay) return [];
    // Bound to loopback only, a connector hears this machine alone, whatever its ranges say.
    const exposed = connector.spec.bindings.filter((binding) => !bindingOnLoopback(binding));
    if (exposed.length === 0) return [];
    const reach = relayReach(connector.spec.remoteIPRanges);
    const at = rangesAt(connector);
    const on = `on ${exposed.join(', ')}`;
    if (reach.beyond.length > 0) {
      return [
        error(
          'DS019',
          at,
          `${label(connector)} permits relay to ${reach.beyond.join(', ')} ${on}: clients beyond loopback and private networks could send mail anywhere through us (an open relay)`,
          'relay needs no authentication here (a client certificate is requested, never required), so remoteIPRanges are the only limit: narrow them to your own servers (for example 10.0.0.0/8 or 127.0.0.1/32), or turn permitRelay off',
        ),
      ];
    }
    if (reach.private.length > 0) {
      return [
        warning(
          'DS107',
          at,
          `${label(connector)} permits relay to the private networks ${reach.private.join(', ')} ${on}: any host there may send mail anywhere through us`,
          'keep remoteIPRanges to the servers that submit mail (a /32 each), so that one compromised host on the network is not a relay',
        ),
      ];
    }
    return [];
  });
}

/** remoteIPRanges where written; permitRelay when the ranges are the schema's default (all). */
function rangesAt(connector: ManifestObject<ReceiveConnectorManifest>) {
  return specWritten(connector, ['remoteIPRanges'])
    ? specAt(connector, ['remoteIPRanges'])
    : specAt(connector, ['permitRelay']);
}
