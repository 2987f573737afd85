// Where a host named by another domain's DNS may not take us: this host, our own networks,
// link-local, multicast and reserved ranges. An MTA-STS policy host (mta-sts.<domain>) and an
// https: TLS report collector are named by the recipient domain, so a name of theirs resolving
// there would have us connect to our own services (SSRF); such an answer is refused whole.
import { BlockList, isIP } from 'node:net';
import { addressValue } from '../../ip-coverage.js';

const INTERNAL = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 3],
] as const)
  INTERNAL.addSubnet(net, prefix, 'ipv4');
// IPv6 prefixes that carry an IPv4 address a translator or relay on the path reaches
// (IPv4-compatible, SIIT's IPv4-translated, local-use NAT64, Teredo) are refused whole: no policy
// host of a real domain lives there. The well-known NAT64 prefix (64:ff9b::/96, what DNS64 gives
// an IPv6-only host for every IPv4-only name) and 6to4 (2002::/16) are judged by the IPv4 address
// they embed, below.
for (const [net, prefix] of [
  ['::', 96],
  ['::ffff:0:0:0', 96],
  ['64:ff9b:1::', 48],
  ['2001::', 32],
  ['3fff::', 20],
  ['5f00::', 16],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const)
  INTERNAL.addSubnet(net, prefix, 'ipv6');

/**
 * Whether an address (either family) is one of ours or reserved; a non-address counts as one. An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged by its IPv4 address: BlockList does so.
 */
export function isInternalAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  if (INTERNAL.check(address, family === 6 ? 'ipv6' : 'ipv4')) return true;
  const embedded = family === 6 ? embeddedIpv4(address) : undefined;
  return embedded !== undefined && INTERNAL.check(embedded, 'ipv4');
}

/** The well-known NAT64 prefix, 64:ff9b::/96 (RFC 6052), as the top 96 bits of an address. */
const NAT64 = 0x0064ff9b_00000000_00000000n;

/** The IPv4 address a 6to4 (2002:AABB:CCDD::/48) or NAT64 (64:ff9b::a.b.c.d) address embeds. */
function embeddedIpv4(address: string): string | undefined {
  const parsed = addressValue(address);
  if (parsed?.family !== 6) return undefined;
  let v4: number;
  if (parsed.value >> 112n === 0x2002n) v4 = Number((parsed.value >> 80n) & 0xffffffffn);
  else if (parsed.value >> 32n === NAT64) v4 = Number(parsed.value & 0xffffffffn);
  else return undefined;
  return [v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255].join('.');
}

/** The first internal address of an answer, if any. */
export function firstInternal<T extends { address: string }>(answer: readonly T[]): T | undefined {
  return answer.find((entry) => isInternalAddress(entry.address));
}
