// DS011 and DS012: connectors that could not be told apart. Two receive connectors on one binding
// with the same remote ranges leave a connection nowhere to go; two send connectors with the same
// address space and cost leave mail to chance.
import type { Diagnostic } from '../../model.js';
import { parseHostPort } from '../../units.js';
import { canonicalName } from '../../certificate-names.js';
import { error } from '../diagnostics.js';
import {
  label,
  specValueAt,
  type ManifestObject,
  type ReceiveConnectorManifest,
} from '../manifest-objects.js';
import type { RuleContext } from './context.js';

export function checkConnectorOverlap({ objects }: RuleContext): Diagnostic[] {
  return [...receiveOverlaps(objects.receiveConnectors), ...sendOverlaps(objects)];
}

function receiveOverlaps(
  connectors: readonly ManifestObject<ReceiveConnectorManifest>[],
): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  const seen = new Map<string, ManifestObject>();
  for (const connector of connectors) {
    const ranges = [...connector.spec.remoteIPRanges]
      // eslint-disable-next-line no-restricted-syntax -- IP ranges (IPv6 hex digits)
      .map((r) => r.toLowerCase())
      .sort()
      .join(',');
    connector.spec.bindings.forEach((binding, index) => {
      const parsed = parseHostPort(binding);
      // Port 0 asks the system for a free port: two such bindings are two listeners.
      if (parsed === undefined || parsed.port === 0) return;
      // eslint-disable-next-line no-restricted-syntax -- a binding: an IP address
      const key = `${parsed.host.toLowerCase()}|${parsed.port}|${ranges}`;
      const first = seen.get(key);
      // Two connectors with one name are DS008's to report, not an overlap.
      if (first === undefined || first.name === connector.name) {
        seen.set(key, connector);
        return;
      }
      diagnostics.push(
        error(
          'DS011',
          specValueAt(connector, ['bindings', index]),
          `${label(connector)} and ${label(first)} both listen on ${binding} for the same remoteIPRanges: a connection could not be placed`,
          'narrow remoteIPRanges on one of them, or give them different bindings',
        ),
      );
    });
  }
  return diagnostics;
}

function sendOverlaps({ sendConnectors }: RuleContext['objects']): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  const seen = new Map<string, ManifestObject>();
  for (const connector of sendConnectors) {
    connector.spec.addressSpaces.forEach((space, index) => {
      const key = `${space === '*' ? '*' : canonicalName(space)}|${connector.spec.cost}`;
      const first = seen.get(key);
      // Two connectors with one name are DS008's to report, not an overlap.
      if (first === undefined || first.name === connector.name) {
        seen.set(key, connector);
        return;
      }
      diagnostics.push(
        error(
          'DS012',
          specValueAt(connector, ['addressSpaces', index]),
          `${label(connector)} and ${label(first)} both serve ${space} at cost ${connector.spec.cost}: either could carry its mail`,
          'give one of them a lower cost, or remove the address space from one',
        ),
      );
    });
  }
  return diagnostics;
}
