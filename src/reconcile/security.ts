// Security impact of one change (DESIGN.md "Security impact is part of the plan"): whether it
// weakens or strengthens domain security, with the reasons a reviewer reads in the plan.
import type { Change, JsonObject, JsonValue, Kind, SecurityImpact } from '../model.js';

interface Impact {
  impact: SecurityImpact;
  reasons: string[];
}

export function securityImpact(
  kind: Kind,
  action: Change['action'],
  before: JsonObject | null,
  after: JsonObject | null,
): Impact {
  const weakens: string[] = [];
  const strengthens: string[] = [];
  const was = (path: string) => (before === null ? undefined : get(before, path));
  const will = (path: string) => (after === null ? undefined : get(after, path));
  const turnedOff = (path: string, what: string) => {
    if (was(path) === true && will(path) !== true) weakens.push(`${what} turned off`);
    if (was(path) !== true && will(path) === true) strengthens.push(`${what} turned on`);
  };

  switch (kind) {
    case 'PartnerDomain': {
      turnedOff('domainSecure.send', 'domain security for sending');
      turnedOff('domainSecure.receive', 'domain security for receiving');
      if (action === 'update' || action === 'replace') {
        const added = difference(will('trustAnchors'), was('trustAnchors'));
        if (added.length > 0) weakens.push(`trust anchors added: ${added.join(', ')}`);
        if (
          was('certificateNameMatch') === 'domain' &&
          will('certificateNameMatch') === 'subdomain'
        ) {
          weakens.push('certificate name match loosened to subdomain');
        }
        const ranges = difference(was('remoteIPRanges'), will('remoteIPRanges'));
        if (ranges.length > 0 && asList(will('remoteIPRanges')).length === 0)
          weakens.push('remote IP restriction removed');
      }
      break;
    }
    case 'SendConnector':
    case 'ReceiveConnector': {
      turnedOff('domainSecure', 'domain security');
      turnedOff('requireTls', 'required TLS');
      if (kind === 'ReceiveConnector') {
        // Relay is the reverse: turning it on is what weakens.
        if (was('permitRelay') !== true && will('permitRelay') === true)
          weakens.push('relay permitted');
        if (was('permitRelay') === true && will('permitRelay') !== true)
          strengthens.push('relay withdrawn');
        const widened = difference(will('remoteIPRanges'), was('remoteIPRanges'));
        if ((action === 'update' || action === 'replace') && widened.length > 0)
          weakens.push(`remote ranges widened: ${widened.join(', ')}`);
      }
      break;
    }
    case 'Organization': {
      // The hop to the internal mailbox server: required > opportunistic > none.
      const rank = (value: JsonValue | undefined) =>
        value === 'required' ? 2 : value === 'opportunistic' ? 1 : value === 'none' ? 0 : undefined;
      const from = rank(was('delivery.relay.tls'));
      const to = rank(will('delivery.relay.tls'));
      if (from !== undefined && to !== undefined && to < from)
        weakens.push(`TLS to the mailbox server lowered to ${String(will('delivery.relay.tls'))}`);
      if (from !== undefined && to !== undefined && to > from)
        strengthens.push(
          `TLS to the mailbox server raised to ${String(will('delivery.relay.tls'))}`,
        );
      break;
    }
    case 'TrustAnchor':
      if (
        was('crl') !== undefined &&
        was('crl') !== null &&
        (will('crl') === null || action === 'delete')
      ) {
        weakens.push('certificate revocation list removed');
      }
      break;
    default:
      break;
  }
  if (weakens.length > 0) return { impact: 'weakens', reasons: weakens };
  if (strengthens.length > 0) return { impact: 'strengthens', reasons: strengthens };
  return { impact: 'none', reasons: [] };
}

function get(object: JsonObject, path: string): JsonValue | undefined {
  let value: JsonValue | undefined = object;
  for (const key of path.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    value = value[key];
  }
  return value;
}

function asList(value: JsonValue | undefined): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

function difference(left: JsonValue | undefined, right: JsonValue | undefined): string[] {
  const other = new Set(asList(right));
  return asList(left).filter((item) => !other.has(item));
}
