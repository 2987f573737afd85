// Which send connector carries mail for a domain, and which TlsPolicy covers it: the most specific
// matching address space wins (`example.com` over `*.example.com` over `*`), then the lowest cost
// (connectors), then the name. Shared by validate (DS003 and DS024 judge what will really be used)
// and the engine.
import { canonicalName } from './certificate-names.js';

/**
 * How specifically an address space matches a domain: -1 not at all; "*" 0; "*.x" (subdomains of
 * x, not x itself) 2 per label of x; an exact domain 2 per label + 1, so exact beats any wildcard.
 */
export function addressSpaceMatch(space: string, domain: string): number {
  const pattern = space.trim() === '*' ? '*' : canonicalName(space.trim());
  const name = canonicalName(domain);
  if (pattern === '*') return 0;
  if (pattern === '' || name === '') return -1;
  if (pattern.startsWith('*.')) {
    const parent = pattern.slice(2);
    return name.endsWith(`.${parent}`) ? 2 * labels(parent) : -1;
  }
  return pattern === name ? 2 * labels(name) + 1 : -1;
}

export interface Routable {
  name: string;
  spec: { addressSpaces: readonly string[]; cost: number };
}

/** The most specific connector for the domain; ties go to the lowest cost, then the name. */
export function chooseSendConnector<T extends Routable>(
  connectors: readonly T[],
  domain: string,
): T | undefined {
  let best: { connector: T; score: number } | undefined;
  for (const connector of connectors) {
    const score = Math.max(
      -1,
      ...connector.spec.addressSpaces.map((s) => addressSpaceMatch(s, domain)),
    );
    if (score < 0) continue;
    if (
      best === undefined ||
      score > best.score ||
      (score === best.score && cheaper(connector, best.connector))
    ) {
      best = { connector, score };
    }
  }
  return best?.connector;
}

export interface Scoped {
  name: string;
  spec: { addressSpaces: readonly string[] };
}

/** The most specific TlsPolicy (or any named object with address spaces); ties to the first name. */
export function chooseByAddressSpace<T extends Scoped>(
  items: readonly T[],
  domain: string,
): T | undefined {
  let best: { item: T; score: number } | undefined;
  for (const item of items) {
    const score = Math.max(-1, ...item.spec.addressSpaces.map((s) => addressSpaceMatch(s, domain)));
    if (score < 0) continue;
    if (
      best === undefined ||
      score > best.score ||
      (score === best.score && item.name < best.item.name)
    )
      best = { item, score };
  }
  return best?.item;
}

function cheaper(a: Routable, b: Routable): boolean {
  return a.spec.cost < b.spec.cost || (a.spec.cost === b.spec.cost && a.name < b.name);
}

function labels(name: string): number {
  return name.split('.').length;
}
