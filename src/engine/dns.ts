// Next hops for a domain: the resolver's static override, else MX by preference with
// each exchange's A/AAAA, else the domain's own A/AAAA (RFC 5321 §5.1 implicit MX). Null MX
// (RFC 7505) and a nonexistent domain are permanent; every other DNS failure is temporary.
import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
import type { OrganizationSpec, StaticRoute } from '../model.js';
import { REPLIES } from './replies.js';
import { smtpReplyText, withDetail, type SmtpReply } from '../smtp-reply.js';
import { domainName, parseDomainName, type DomainName } from '../domain-name.js';

export interface NextHop {
  /** The name we connect for: the MX exchange, the static route's host, or the domain itself. */
  host: string;
  address: string;
  port: number;
  preference: number;
}

export type ResolverSettings = OrganizationSpec['resolver'];

export interface ResolveOptions {
  timeoutMs?: number; // per query try (default 5 s)
  tries?: number; // default 2
}

/** A failure to find any hop; `reply` is the queue's last error, `permanent` bounces at once. */
export class NextHopError extends Error {
  override name = 'NextHopError';
  constructor(
    readonly reply: SmtpReply,
    readonly permanent: boolean,
  ) {
    super(smtpReplyText(reply));
  }
}

/** Beyond this many addresses a domain is not going to answer on the next one either. */
const MAX_HOPS = 20;

export async function resolveNextHops(
  name: DomainName,
  resolver: ResolverSettings,
  port: number,
  options: ResolveOptions = {},
): Promise<NextHop[]> {
  const routes = staticRoutes(resolver, name);
  if (routes !== undefined)
    return resolveRoutes(`static route for ${name}`, routes, resolver, port, options);

  const lookup = createResolver(resolver, options);

  let exchanges: { exchange: string; priority: number }[];
  try {
    exchanges = await lookup.resolveMx(name);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === dns.NOTFOUND) {
      throw new NextHopError(withDetail(REPLIES.nonexistentDomain, `${name} (NXDOMAIN)`), true);
    }
    if (code !== dns.NODATA)
      throw temporary(`MX lookup for ${name}: ${code ?? (error as Error).message}`);
    exchanges = [];
  }

  const usable = exchanges.filter((mx) => !isNullExchange(mx.exchange));
  if (exchanges.length > 0 && usable.length === 0) {
    throw new NextHopError(withDetail(REPLIES.nullMx, `${name} accepts no mail`), true);
  }
  if (usable.length === 0) {
    // RFC 5321 §5.1: no MX, the domain itself is the host, at preference 0.
    const addresses = await addressesOf(lookup, name).catch((error: Error) => {
      throw temporary(`${name} has no MX record and its address lookup failed: ${error.message}`);
    });
    if (addresses.length === 0) throw temporary(`${name} has no MX and no A/AAAA record`);
    return addresses
      .slice(0, MAX_HOPS)
      .map((address) => ({ host: name, address, port, preference: 0 }));
  }

  const ordered = byPreference(usable);
  const hops: NextHop[] = [];
  const problems: string[] = [];
  for (const mx of ordered) {
    // A DNS answer is a boundary too: the exchange's name is made canonical, or skipped.
    const parsed = parseDomainName(mx.exchange);
    if (!parsed.ok) {
      problems.push(`MX ${JSON.stringify(mx.exchange)} is not a host name: ${parsed.reason}`);
      continue;
    }
    const host = parsed.name;
    try {
      for (const address of await addressesOf(lookup, host)) {
        hops.push({ host, address, port, preference: mx.priority });
      }
    } catch (error) {
      problems.push(`${host}: ${(error as Error).message}`);
    }
  }
  if (hops.length === 0) {
    const why = problems.length > 0 ? problems.join('; ') : 'no A/AAAA record';
    throw temporary(`no address for the MX hosts of ${name} (${why})`);
  }
  return hops.slice(0, MAX_HOPS);
}

/**
 * Hops for listed hosts (static routes, smart hosts), in the order given: names resolved through
 * the resolver, a port of their own or the connector's.
 */
export async function resolveRoutes(
  what: string,
  routes: readonly StaticRoute[],
  resolver: ResolverSettings,
  port: number,
  options: ResolveOptions = {},
): Promise<NextHop[]> {
  const lookup = createResolver(resolver, options);
  const hops: NextHop[] = [];
  for (const [index, route] of routes.entries()) {
    const addresses = await addressesOf(lookup, route.host).catch((error: Error) => {
      throw temporary(`${what}: ${error.message}`);
    });
    for (const address of addresses) {
      hops.push({ host: route.host, address, port: route.port ?? port, preference: index });
    }
  }
  if (hops.length === 0) throw temporary(`${what} resolves to no address`);
  return hops.slice(0, MAX_HOPS);
}

function createResolver(settings: ResolverSettings, options: ResolveOptions): dns.Resolver {
  const resolver = new dns.Resolver({
    timeout: options.timeoutMs ?? 5_000,
    tries: options.tries ?? 2,
  });
  // Empty: the system's resolvers (what /etc/resolv.conf names), as Node reads them.
  if (settings.servers.length > 0) resolver.setServers(settings.servers);
  return resolver;
}

/** The resolver's override for the domain, its keys compared in canonical form. */
function staticRoutes(settings: ResolverSettings, domain: DomainName) {
  if (Object.hasOwn(settings.static, domain)) return settings.static[domain];
  // A generation's keys are canonical already (canonical-config.ts); other callers' may not be.
  return Object.entries(settings.static).find(([key]) => domainName(key) === domain)?.[1];
}

/** IPv4 first (loopback labs and many hosts have no IPv6 route), then IPv6; empty when none. */
async function addressesOf(resolver: dns.Resolver, host: string): Promise<string[]> {
  if (isIP(host) !== 0) return [host];
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
  const addresses = [
    ...(v4.status === 'fulfilled' ? v4.value : []),
    ...(v6.status === 'fulfilled' ? v6.value : []),
  ];
  if (addresses.length > 0) return addresses;
  // Both failed: "no such name" or "no record" means none; anything else is a DNS failure.
  for (const result of [v4, v6]) {
    if (result.status === 'rejected') {
      const code = (result.reason as NodeJS.ErrnoException).code;
      if (code !== dns.NODATA && code !== dns.NOTFOUND) {
        throw new Error(`A/AAAA lookup for ${host}: ${code ?? String(result.reason)}`);
      }
    }
  }
  return [];
}

/** RFC 7505: a single MX "." at preference 0; Node gives its exchange as "". */
function isNullExchange(exchange: string): boolean {
  return exchange === '' || exchange === '.';
}

/** Lowest preference first; equal preferences in random order (RFC 5321 §5.1). */
function byPreference<T extends { priority: number }>(records: T[]): T[] {
  const shuffled = records
    .map((record) => ({ record, tie: Math.random() }))
    .sort((a, b) => a.record.priority - b.record.priority || a.tie - b.tie);
  return shuffled.map(({ record }) => record);
}

function temporary(detail: string): NextHopError {
  return new NextHopError(withDetail(REPLIES.dnsFailure, detail), false);
}
