// How one message's recipients split into queue entries: one per next-hop domain (SPEC §6).

/** Recipients by next-hop domain, duplicates (case-insensitive) dropped, order kept. */
export function groupByDomain(recipients: readonly string[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  const seen = new Set<string>();
  for (const recipient of recipients) {
    const at = recipient.lastIndexOf('@');
    if (at <= 0 || at === recipient.length - 1) {
      throw new RangeError(`recipient ${JSON.stringify(recipient)} has no domain`);
    }
    if (seen.has(recipient.toLowerCase())) continue;
    seen.add(recipient.toLowerCase());
    const domain = recipient.slice(at + 1).toLowerCase();
    const list = groups.get(domain) ?? [];
    list.push(recipient);
    groups.set(domain, list);
  }
  return groups;
}
