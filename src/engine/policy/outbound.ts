// The outbound TLS policy of a non-partner domain, per next hop: which TlsPolicy covers it (the
// most specific address space, else the defaults), what DANE and MTA-STS publish for it, and for
// each MX host whether the session needs DANE, MTA-STS's PKIX check, only the connector's TLS, or
// may not be used at all. Domain-secure partners never come here: mutual TLS is not negotiable.
import { chooseByAddressSpace } from '../../address-spaces.js';
import type { DomainName } from '../../domain-name.js';
import type { Named, PolicyLevel, RuntimeConfig, TlsPolicySpec } from '../../model.js';
import { daneForDomain, type DomainDane } from './dane-lookup.js';
import type { StsFetchOptions } from './mta-sts-fetch.js';
import type { StsLookup, StsPolicyCache } from './mta-sts-cache.js';
import { mxMatches } from './mta-sts-policy.js';
import { PolicyResolver } from './resolver.js';
import type { TlsaRecord } from './tlsa.js';
import type { ResultType } from '../tlsrpt/results.js';

/** What a domain no TlsPolicy covers gets: each published policy enforced, opportunistic otherwise. */
export const DEFAULT_TLS_POLICY: Omit<TlsPolicySpec, 'addressSpaces'> = {
  dane: 'optional',
  mtaSts: 'optional',
  requireTls: false,
};

export interface ChosenTlsPolicy {
  /** The TlsPolicy's name, or null: the defaults. */
  name: string | null;
  dane: PolicyLevel;
  mtaSts: PolicyLevel;
  requireTls: boolean;
}

/** The most specific policy for the domain (ties to the first name), or the defaults. */
export function chooseTlsPolicy(
  policies: readonly Named<TlsPolicySpec>[],
  domain: DomainName,
): ChosenTlsPolicy {
  const best = chooseByAddressSpace(policies, domain);
  if (best === undefined) return { name: null, ...DEFAULT_TLS_POLICY };
  const { dane, mtaSts, requireTls } = best.spec;
  return { name: best.name, dane, mtaSts, requireTls };
}

/** What a session to one hop must verify. */
export type HopTls =
  /** Usable TLSA records: TLS required, the chain must match one; names for DANE-TA. */
  | { kind: 'dane'; records: TlsaRecord[]; names: DomainName[] }
  /** MTA-STS: TLS with a chain to a trusted CA naming the MX host; `testing` logs a failure and sends. */
  | { kind: 'mta-sts'; mode: 'enforce' | 'testing'; host: DomainName; cas: readonly string[] }
  /** Nothing published: the connector's TLS (requireTls from the connector or the policy). */
  | { kind: 'connector'; requireTls: boolean }
  /** This hop may not be used; the reason is the queue's last error if no hop takes the mail. */
  | {
      kind: 'refused';
      by: 'dane' | 'mta-sts';
      reason: string;
      /** The failure as TLS reporting (RFC 8460 §4.3.2) names it. */
      result: ResultType;
    };

export interface DestinationTls {
  domain: DomainName;
  policy: ChosenTlsPolicy;
  dane: DomainDane | undefined;
  sts: StsLookup | undefined;
  /** What was looked up and decided, in order (probe prints them). */
  steps: string[];
}

export interface OutboundPolicyServices {
  cache: StsPolicyCache;
  /** Extra CAs for MTA-STS policy hosts and MX hosts (labs and tests only). */
  extraCas?: readonly string[];
  /** The MTA-STS policy host's port (labs only). */
  mtaStsPort?: number;
  timeoutMs?: number;
}

/** The look-ups of a domain's policies (DANE, MTA-STS), as far as the chosen TlsPolicy asks. */
export async function destinationTls(
  domain: DomainName,
  config: RuntimeConfig,
  port: number,
  services: OutboundPolicyServices,
): Promise<DestinationTls> {
  const policy = chooseTlsPolicy(config.tlsPolicies ?? [], domain);
  const { resolver: settings } = config.organization.spec;
  const resolver = new PolicyResolver({
    servers: settings.servers,
    validating: settings.validating === true,
    ...(services.timeoutMs === undefined ? {} : { timeoutMs: services.timeoutMs }),
  });
  const steps = [
    `TLS policy for ${domain}: ${policy.name === null ? 'the defaults' : `TlsPolicy ${policy.name}`} (dane ${policy.dane}, mtaSts ${policy.mtaSts}, requireTls ${String(policy.requireTls)})`,
  ];
  if (policy.dane !== 'disable' && settings.validating !== true)
    steps.push(
      'DANE: the resolver is not configured as validating (resolver.validating): no answer is secure',
    );
  // Without a validating resolver nothing is secure: DANE is not looked up at all.
  const dane =
    policy.dane === 'disable' || settings.validating !== true
      ? undefined
      : await daneForDomain(resolver, domain, port);
  if (dane !== undefined) steps.push(...dane.steps.map((step) => `DANE: ${step}`));
  let sts: StsLookup | undefined;
  if (policy.mtaSts !== 'disable') {
    const fetch: StsFetchOptions = {
      resolver,
      // Fail closed: the policy host is the domain's to name, and may not be one of ours.
      allowInternalAddresses: config.organization.spec.allowInternalPolicyHosts === true,
      ...(services.extraCas === undefined ? {} : { extraCas: services.extraCas }),
      ...(services.mtaStsPort === undefined ? {} : { port: services.mtaStsPort }),
    };
    sts = await services.cache.lookup(domain, fetch);
    steps.push(...sts.steps.map((step) => `MTA-STS: ${step}`));
  }
  return { domain, policy, dane, sts, steps };
}

/**
 * One hop's requirement. DANE first (RFC 8461 §2: where DANE applies, MTA-STS does not override
 * it), then MTA-STS, then the connector; `require` turns an absent policy into a refusal.
 */
export function hopTls(
  destination: DestinationTls,
  host: DomainName,
  extraCas: readonly string[] = [],
): HopTls {
  const { policy, dane, sts, domain } = destination;
  const by = policy.name === null ? '' : ` by TlsPolicy ${policy.name}`;
  if (dane?.failure !== undefined)
    return { kind: 'refused', by: 'dane', reason: dane.failure, result: 'dnssec-invalid' };
  const daneHost = dane?.hosts.get(host);
  if (daneHost?.kind === 'defer')
    return { kind: 'refused', by: 'dane', reason: daneHost.reason, result: 'dnssec-invalid' };
  if (daneHost?.kind === 'tlsa')
    return { kind: 'dane', records: daneHost.records, names: daneHost.names };
  if (dane?.secure === true && daneHost === undefined)
    // The secure MX answer does not name this host: whatever answer named it is not believed.
    return {
      kind: 'refused',
      by: 'dane',
      reason: `${host} is not among the DNSSEC-validated MX hosts of ${domain}`,
      result: 'dnssec-invalid',
    };
  if (policy.dane === 'require') {
    const why =
      daneHost?.why ??
      (dane?.secure === true
        ? `${host} is not a secure MX host of ${domain}`
        : `the MX records of ${domain} are not DNSSEC-validated`);
    return {
      kind: 'refused',
      by: 'dane',
      reason: `required for ${domain}${by}, and ${why}`,
      result: 'dane-required',
    };
  }
  const stsPolicy = sts?.policy;
  if (policy.mtaSts !== 'disable') {
    if (stsPolicy === undefined || stsPolicy.mode === 'none') {
      if (policy.mtaSts === 'require')
        return {
          kind: 'refused',
          by: 'mta-sts',
          reason: `required for ${domain}${by}, and it has no policy in force`,
          result: 'sts-policy-fetch-error',
        };
    } else {
      // `require` enforces a policy its domain is still testing.
      const mode = policy.mtaSts === 'require' ? 'enforce' : stsPolicy.mode;
      if (!mxMatches(stsPolicy.mx, host)) {
        if (mode === 'enforce')
          return {
            kind: 'refused',
            by: 'mta-sts',
            reason: `${host} is not an MX host the policy of ${domain} names (mx ${stsPolicy.mx.join(', ')})`,
            result: 'validation-failure',
          };
      }
      return { kind: 'mta-sts', mode, host, cas: extraCas };
    }
  }
  // Secure TLSA records none of which is usable: TLS stays mandatory (RFC 7672 §2.2).
  return { kind: 'connector', requireTls: policy.requireTls || daneHost?.kind === 'encrypt' };
}

/** Whether the host's secure TLSA records, though none is usable, make TLS mandatory. */
export function daneRequiresTls(destination: DestinationTls, host: DomainName): boolean {
  return destination.dane?.hosts.get(host)?.kind === 'encrypt';
}
