// Which addresses a list of IP ranges (CIDR, or a single address) covers, as intervals per
// family: whether new ranges reach an address the old ones did not is a question of coverage,
// not of the strings written ("10.0.0.0/8" covers "10.1.0.0/16"). Pure.
import { isIP } from 'node:net';

interface Interval {
  start: bigint;
  end: bigint; // inclusive
}

interface Coverage {
  4: Interval[];
  6: Interval[];
}

/** The ranges of `after` that hold an address none of `before` holds; unreadable ones count. */
export function rangesBeyond(after: readonly string[], before: readonly string[]): string[] {
  const old = coverage(before);
  return after.filter((text) => {
    const range = parseRange(text);
    if (range === undefined) return true; // fail closed: what cannot be read may cover anything
    return !old[range.family].some((i) => i.start <= range.start && range.end <= i.end);
  });
}

function coverage(ranges: readonly string[]): Coverage {
  const found: Coverage = { 4: [], 6: [] };
  for (const text of ranges) {
    const range = parseRange(text);
    if (range !== undefined) found[range.family].push(range);
  }
  return { 4: merge(found[4]), 6: merge(found[6]) };
}

/** Sorted, with overlapping and adjacent intervals joined, so containment is one look each. */
function merge(intervals: Interval[]): Interval[] {
  const sorted = [...intervals].sort((a, b) =>
    a.start < b.start ? -1 : a.start > b.start ? 1 : 0,
  );
  const merged: Interval[] = [];
  for (const interval of sorted) {
    const last = merged.at(-1);
    if (last !== undefined && interval.start <= last.end + 1n) {
      if (interval.end > last.end) last.end = interval.end;
    } else merged.push({ ...interval });
  }
  return merged;
}

function parseRange(text: string): (Interval & { family: 4 | 6 }) | undefined {
  const [address = '', prefixText, extra] = text.split('/');
  if (extra !== undefined) return undefined;
  const family = isIP(address);
  if (family !== 4 && family !== 6) return undefined;
  const width = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? width : Number(prefixText);
  if (!/^\d+$/.test(prefixText ?? String(width)) || prefix > width) return undefined;
  const value = family === 4 ? ipv4Value(address) : ipv6Value(address);
  const size = 1n << BigInt(width - prefix);
  const start = (value / size) * size;
  return { family, start, end: start + size - 1n };
}

/** The numeric value of an address, as a client's address is compared with a range. */
export function addressValue(address: string): { family: 4 | 6; value: bigint } | undefined {
  const family = isIP(address);
  if (family === 4) return { family, value: ipv4Value(address) };
  if (family === 6) return { family, value: ipv6Value(address) };
  return undefined;
}

/** Whether one of the ranges holds the address. */
export function rangesHold(ranges: readonly string[], address: string): boolean {
  const parsed = addressValue(address);
  if (parsed === undefined) return false;
  return coverage(ranges)[parsed.family].some(
    (i) => i.start <= parsed.value && parsed.value <= i.end,
  );
}

function ipv4Value(address: string): bigint {
  return address.split('.').reduce((value, part) => (value << 8n) | BigInt(Number(part)), 0n);
}

function ipv6Value(address: string): bigint {
  const [head = '', tail] = address.split('::');
  const groups = (part: string) =>
    (part === '' ? [] : part.split(':')).flatMap((group) => {
      if (!group.includes('.')) return [BigInt(parseInt(group, 16))];
      const v4 = ipv4Value(group); // an embedded IPv4 tail is two groups
      return [v4 >> 16n, v4 & 0xffffn];
    });
  const front = groups(head);
  const back = tail === undefined ? [] : groups(tail);
  const zeros = Array<bigint>(8 - front.length - back.length).fill(0n);
  return [...front, ...(tail === undefined ? [] : zeros), ...back].reduce(
    (value, group) => (value << 16n) | group,
    0n,
  );
}
