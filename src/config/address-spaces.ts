// Which send connector carries mail for a domain (SPEC §4.1): the most specific matching address
// space wins (`example.com` over `*.example.com` over `*`), then the lowest cost.
import { canonicalName } from './certificate-names.js';

/** How specifically the address space matches the domain (higher wins); undefined: no match. */
export function addressSpaceMatch(space: string, domain: string): number | undefined {
  if (space === '*') return 0;
  const name = canonicalName(domain);
  const spaceName = canonicalName(space);
  if (spaceName.startsWith('*.')) {
    const parent = spaceName.slice(2);
    // Longer parents are more specific; any exact match beats every wildcard.
    return name.endsWith(`.${parent}`) ? parent.split('.').length : undefined;
  }
  return spaceName === name ? 1000 : undefined;
}

export interface Routable {
  addressSpaces: readonly string[];
  cost: number;
}

/** The connector that would carry mail for the domain, or undefined when none matches. */
export function selectConnector<T extends { spec: Routable }>(
  connectors: readonly T[],
  domain: string,
): T | undefined {
  let best: { connector: T; specificity: number } | undefined;
  for (const connector of connectors) {
    const specificity = Math.max(
      -1,
      ...connector.spec.addressSpaces.map((space) => addressSpaceMatch(space, domain) ?? -1),
    );
    if (specificity < 0) continue;
    if (
      best === undefined ||
      specificity > best.specificity ||
      (specificity === best.specificity && connector.spec.cost < best.connector.spec.cost)
    ) {
      best = { connector, specificity };
    }
  }
  return best?.connector;
}
