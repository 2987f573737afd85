// Whom a relay-permitting receive connector opens to: its remoteIPRanges split by what they cover,
// loopback, private networks, or addresses beyond them (the Internet). Computed by coverage, not by
// spelling: 0.0.0.0/1 with 128.0.0.0/1 is 0.0.0.0/0, and ::ffff:0:0/96 holds every IPv4 address.
import { rangesBeyond } from './ip-coverage.js';
import { parseHostPort } from './units.js';

/** This machine: 127.0.0.0/8 and ::1, and 127/8 as IPv4-mapped IPv6. */
export const LOOPBACK_RANGES = ['127.0.0.0/8', '::1/128', '::ffff:127.0.0.0/104'];

/**
 * Networks no one outside the organization reaches us from: RFC 1918, RFC 4193 unique local
 * (fc00::/7), and link-local (169.254.0.0/16, fe80::/10: the same segment only), each also in
 * its IPv4-mapped IPv6 form. Shared address space (100.64.0.0/10, RFC 6598) is not among them:
 * a carrier's other customers are in it.
 */
export const PRIVATE_RANGES = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '169.254.0.0/16',
  'fc00::/7',
  'fe80::/10',
  '::ffff:10.0.0.0/104',
  '::ffff:172.16.0.0/108',
  '::ffff:192.168.0.0/112',
  '::ffff:169.254.0.0/112',
];

export interface RelayReach {
  /** Ranges within loopback. */
  loopback: string[];
  /** Ranges within private networks that reach beyond loopback. */
  private: string[];
  /** Ranges that hold an address beyond loopback and private networks (or cannot be read). */
  beyond: string[];
}

/** Each range in the one class that holds all of it. */
export function relayReach(ranges: readonly string[]): RelayReach {
  const beyond = rangesBeyond(ranges, [...LOOPBACK_RANGES, ...PRIVATE_RANGES]);
  const beyondLoopback = new Set(rangesBeyond(ranges, LOOPBACK_RANGES));
  return {
    loopback: ranges.filter((range) => !beyondLoopback.has(range)),
    private: ranges.filter((range) => beyondLoopback.has(range) && !beyond.includes(range)),
    beyond,
  };
}

/** A binding on a loopback address (0.0.0.0 and :: are every address, so not). */
export function bindingOnLoopback(binding: string): boolean {
  const parsed = parseHostPort(binding);
  return parsed !== undefined && rangesBeyond([parsed.host], LOOPBACK_RANGES).length === 0;
}
