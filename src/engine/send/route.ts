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

/**
 * How specifically an address space matches a domain: -1 not at all; "*" 0; "*.x" (subdomains of
 * x, not x itself) 2 per label of x; an exact domain 2 per label + 1, so exact beats any wildcard.
 */
export function addressSpaceMatch(space: string, domain: string): number {
  const pattern = space.trim().toLowerCase().replace(/\.$/, '');
  const name = domain.toLowerCase().replace(/\.$/, '');
  if (pattern === '*') return 0;
  if (pattern.startsWith('*.')) {
    const parent = pattern.slice(2);
    return name.endsWith(`.${parent}`) ? 2 * labels(parent) : -1;
  }
  return pattern === name ? 2 * labels(name) + 1 : -1;
}

/** The most specific connector for the domain; ties go to the lowest cost, then the name. */
export function chooseSendConnector(
  connectors: readonly LoadedSendConnector[],
  domain: string,
): LoadedSendConnector | undefined {
  let best: { connector: LoadedSendConnector; score: number } | undefined;
  for (const connector of connectors) {
    const score = Math.max(
      -1,
      ...connector.spec.addressSpaces.map((s) => addressSpaceMatch(s, domain)),
    );
    if (score < 0) continue;
    if (
      best === undefined ||
      score > best.score ||
      (score === best.score &&
        (connector.spec.cost < best.connector.spec.cost ||
          (connector.spec.cost === best.connector.spec.cost &&
            connector.name < best.connector.name)))
    ) {
      best = { connector, score };
    }
  }
  return best?.connector;
}

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

function labels(name: string): number {
  return name.split('.').length;
}
