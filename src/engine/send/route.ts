// Routing a next-hop domain (SPEC §4.1, §4.2): the send connector whose address space matches
// most specifically, the TLS policy it gets (domain security for a send-secure partner), and the
// hops to try in order (smart hosts, or DNS). Pure apart from the DNS look-up.
import type { StaticRoute } from '../../model.js';
import { resolveNextHops, resolveRoutes, type NextHop, type ResolveOptions } from '../dns.js';
import type { Generation, LoadedPartner, LoadedSendConnector } from '../generation.js';
import { parseHostPort } from '../../units.js';

export type TlsPolicy =
  /** Mutual TLS: STARTTLS mandatory, our certificate, the partner's anchors and names checked. */
  | { kind: 'domain-secure'; partner: LoadedPartner }
  /** STARTTLS mandatory (requireTls), no client certificate, the server's certificate not judged. */
  | { kind: 'required' }
  /** STARTTLS when offered, plaintext otherwise. */
  | { kind: 'opportunistic' };

export { addressSpaceMatch, chooseSendConnector } from '../../address-spaces.js';

/** The partner to enforce for a next-hop domain, when it is send-secure. */
export function sendSecurePartner(
  generation: Generation,
  domain: string,
): LoadedPartner | undefined {
  const partner = generation.partnersByDomain.get(domain.toLowerCase());
  return partner?.spec.domainSecure.send === true ? partner : undefined;
}

/** Domain security needs both sides of Exchange's switch: the partner listed, the connector enabled. */
export function tlsPolicyFor(
  connector: LoadedSendConnector,
  partner: LoadedPartner | undefined,
): TlsPolicy {
  // Fail closed: a send-secure partner gets verified mutual TLS whatever the connector says.
  // validate refuses such a connector (DS003); the engine does not rely on that.
  if (partner !== undefined) return { kind: 'domain-secure', partner };
  return connector.spec.requireTls ? { kind: 'required' } : { kind: 'opportunistic' };
}

/** Smart hosts ("host", "host:port", "[v6]:port") or DNS for the domain, in the order to try. */
export async function nextHopsFor(
  connector: LoadedSendConnector,
  domain: string,
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
