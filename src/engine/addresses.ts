// IP ranges (CIDR) and bindings, parsed once per generation for the per-connection hot path.
import { isIP } from 'node:net';
import { parseHostPort } from '../units.js';

export interface IpRange {
  text: string;
  family: 4 | 6;
  bits: bigint; // the network, masked
  prefix: number;
}

export function parseRange(text: string): IpRange {
  const [address = '', prefixText] = text.split('/');
  const family = isIP(address);
  if (family !== 4 && family !== 6) throw new RangeError(`not an IP range: ${text}`);
  const width = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? width : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > width)
    throw new RangeError(`bad prefix: ${text}`);
  return { text, family, prefix, bits: mask(ipToBigInt(address), prefix, width) };
}

/** The most specific range containing the address (longest prefix), or undefined. */
export function matchRange(ranges: readonly IpRange[], address: string): IpRange | undefined {
  const normal = normalizeAddress(address);
  const family = isIP(normal);
  if (family !== 4 && family !== 6) return undefined;
  const width = family === 4 ? 32 : 128;
  const value = ipToBigInt(normal);
  let best: IpRange | undefined;
  for (const range of ranges) {
    if (range.family !== family) continue;
    if (mask(value, range.prefix, width) !== range.bits) continue;
    if (best === undefined || range.prefix > best.prefix) best = range;
  }
  return best;
}

/** IPv4-mapped IPv6 ("::ffff:127.0.0.1") as plain IPv4. */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] ?? address;
}

export interface Binding {
  text: string;
  host: string;
  port: number;
}

export function parseBinding(text: string): Binding {
  const parsed = parseHostPort(text);
  if (parsed === undefined) throw new RangeError(`not a binding (ip:port): ${text}`);
  return { text, ...parsed };
}

function ipToBigInt(address: string): bigint {
  if (isIP(address) === 4) {
    return address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
  }
  const [head = '', tail] = address.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':'));
  let groups = parse(head);
  let rest = tail === undefined ? [] : parse(tail);
  // An embedded IPv4 tail ("::ffff:1.2.3.4") counts as two groups.
  const expand = (list: string[]) =>
    list.flatMap((group) => {
      if (!group.includes('.')) return [group];
      const v4 = ipToBigInt(group);
      return [(v4 >> 16n).toString(16), (v4 & 0xffffn).toString(16)];
    });
  groups = expand(groups);
  rest = expand(rest);
  const zeros = tail === undefined ? [] : Array<string>(8 - groups.length - rest.length).fill('0');
  return [...groups, ...zeros, ...rest].reduce(
    (acc, group) => (acc << 16n) | BigInt(parseInt(group, 16)),
    0n,
  );
}

function mask(value: bigint, prefix: number, width: number): bigint {
  if (prefix === 0) return 0n;
  const shift = BigInt(width - prefix);
  return (value >> shift) << shift;
}
