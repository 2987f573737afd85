// DS017: the Organization's delivery relay must not be one of our own receive bindings: mail for
// accepted domains would come back to us, be queued for the relay again, and loop until it expires.
import { isIP } from 'node:net';
import type { Diagnostic } from '../../model.js';
import { parseHostPort } from '../../units.js';
import { error } from '../diagnostics.js';
import { label, specAt } from '../manifest-objects.js';
import { theOrganization, type RuleContext } from './context.js';
import { domainName } from '../../domain-name.js';

/** The ports RFC 5321 and RFC 2033 name, as the engine's relay delivery takes them. */
const DEFAULT_PORTS = { smtp: 25, lmtp: 24 } as const;

export function checkRelayLoop(context: RuleContext): Diagnostic[] {
  const organization = theOrganization(context);
  const relay = organization?.spec.delivery.relay;
  if (organization === undefined || relay === undefined) return [];
  const target = relayTarget(relay.host, DEFAULT_PORTS[relay.protocol]);
  const ourNames = new Set(['localhost', normalHost(organization.spec.hostname)]);
  for (const connector of context.objects.receiveConnectors) {
    for (const text of connector.spec.bindings) {
      const binding = parseHostPort(text);
      if (binding === undefined || binding.port !== target.port) continue;
      if (!reaches(target.host, normalHost(binding.host), ourNames)) continue;
      return [
        error(
          'DS017',
          specAt(organization, ['delivery', 'relay', 'host']),
          `${label(organization)} relays accepted mail to ${relay.host}, which is binding ${text} of ${label(connector)}: mail would loop`,
          'point delivery.relay.host at the internal mailbox server, or use delivery.maildir to deliver here',
        ),
      ];
    }
  }
  return [];
}

function relayTarget(host: string, defaultPort: number): { host: string; port: number } {
  const parsed = parseHostPort(host);
  if (parsed !== undefined) return { host: normalHost(parsed.host), port: parsed.port };
  return { host: normalHost(host.replace(/^\[(.*)\]$/, '$1')), port: defaultPort };
}

/**
 * Whether a connection to `host` arrives on a listener bound to `bound`: the same address, or a
 * wildcard binding (it listens on every address of the machine) reached by loopback, localhost or
 * our own host name (our MX: another node of ours would take the mail back in as well).
 */
function reaches(host: string, bound: string, ourNames: ReadonlySet<string>): boolean {
  if (host === bound) return true;
  if (host === 'localhost' && (bound === '127.0.0.1' || bound === '::1')) return true;
  const ours = ourNames.has(host) || host === '::1' || /^127\./.test(host);
  if (bound === '0.0.0.0') return ours && isIP(host) !== 6;
  if (bound === '::') return ours;
  return false;
}

/** A name in canonical form, an IP address as written (IPv6 compared without case). */
function normalHost(host: string): string {
  // eslint-disable-next-line no-restricted-syntax -- an IPv6 address's hex digits, not a name
  return isIP(host) !== 0 ? host.toLowerCase() : (domainName(host) ?? host);
}
