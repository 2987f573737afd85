// Routing a next-hop domain: the send connector whose address space matches
// most specifically, the TLS policy it gets (domain security for a send-secure partner), and the
// hops to try in order (smart hosts, or DNS). Pure apart from the DNS look-up.
import type { StaticRoute } from '../../model.js';
import { resolveNextHops, resolveRoutes, type NextHop, type ResolveOptions } from '../dns.js';
import type { Generation, LoadedPartner, LoadedSendConnector } from '../generation.js';
import { parseHostPort } from '../../units.js';
import type { DomainName } from '../../domain-name.js';
import type { PublishedPolicy } from '../policy/session-policy.js';

export type TlsPolicy =
  /** Mutual TLS: STARTTLS mandatory, our certificate, the partner's anchors and names checked. */
  | { kind: 'domain-secure'; partner: LoadedPartner }
  /** STARTTLS mandatory (requireTls), no client certificate, the server's certificate not judged. */
  | { kind: 'required' }
  /** STARTTLS when offered, plaintext otherwise. */
  | { kind: 'opportunistic' }
  /** A non-partner hop's published policy: DANE, or MTA-STS (policy/session-policy.ts). */
  | PublishedPolicy;

export { addressSpaceMatch, chooseSendConnector } from '../../address-spaces.js';

/** The partner to enforce for a next-hop domain, when it is send-secure. */
export function sendSecurePartner(
  generation: Generation,
  domain: DomainName,
): LoadedPartner | undefined {
  const partner = generation.partnersByDomain.get(domain);
  return partner?.spec.domainSecure.send === true ? partner : undefined;
}

/** Why a message may not leave at all: a security decision whose look-up missed. */
export interface NoTlsPolicy {
  kind: 'refused';
  reason: string;
}

/**
 * The TLS policy for mail to a domain, failing closed both ways: a send-secure partner gets
 * verified mutual TLS whatever the connector says (validate refuses such a connector, DS003; the
 * engine does not rely on that), and a domain-secure connector sends only to a send-secure
 * partner: when the look-up finds none, the message waits with a last error that says so, never
 * with required or opportunistic TLS to whoever answers.
 */
export function tlsPolicyFor(
  connector: LoadedSendConnector,
  partner: LoadedPartner | undefined,
  domain: DomainName,
): TlsPolicy | NoTlsPolicy {
  if (partner !== undefined) return { kind: 'domain-secure', partner };
  if (connector.spec.domainSecure) {
    return {
      kind: 'refused',
      reason: `send connector ${connector.name} has domainSecure: true and no PartnerDomain with domainSecure.send matches ${domain}`,
    };
  }
  return connector.spec.requireTls ? { kind: 'required' } : { kind: 'opportunistic' };
}

/** Smart hosts ("host", "host:port", "[v6]:port") or DNS for the domain, in the order to try. */
export async function nextHopsFor(
  connector: LoadedSendConnector,
  domain: DomainName,
  generation: Generation,
  options: ResolveOptions = {},
): Promise<NextHop[]> {
  const resolver = generation.config.organization.spec.resolver;
  const { routing, port } = connector.spec;
  if ('smartHosts' in routing) {
    const routes: StaticRoute[] = routing.smartHosts.map((text) => {
      const parsed = parseHostPort(text);
      return parsed ?? { host: text.replace(/^\[(.*)\]$/, '$1') };
    });
    return resolveRoutes(`smart hosts of ${connector.name}`, routes, resolver, port, options);
  }
  return resolveNextHops(domain, resolver, port, options);
}
