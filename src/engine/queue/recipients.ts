// How one message's recipients split into queue entries: one per next-hop domain, keyed
// by the canonical domain (domain-name.ts) whatever spelling the envelope used.
import { parseAddress, type DomainName } from '../../domain-name.js';

/**
 * Recipients by next-hop domain, each with its domain in canonical form; duplicates (the local
 * part compared without case, as smtp-server does) dropped, order kept. A recipient without a
 * domain name (none, a literal, or one that does not map) is a RangeError: the receive side
 * refuses those before DATA.
 */
export function groupByDomain(recipients: readonly string[]): Map<DomainName, string[]> {
  const groups = new Map<DomainName, string[]>();
  const seen = new Set<string>();
  for (const recipient of recipients) {
    const parsed = parseAddress(recipient);
    if (!parsed.ok || parsed.address === undefined || parsed.address.localPart === '') {
      const why = parsed.ok ? 'has no domain name' : `has no domain name (${parsed.reason})`;
      throw new RangeError(`recipient ${JSON.stringify(recipient)} ${why}`);
    }
    const { localPart, domain, address } = parsed.address;
    // eslint-disable-next-line no-restricted-syntax -- a local part, compared without case as smtp-server does
    const key = `${localPart.toLowerCase()}@${domain}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const list = groups.get(domain) ?? [];
    list.push(address);
    groups.set(domain, list);
  }
  return groups;
}
