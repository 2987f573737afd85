// Every domain and host name of a RuntimeConfig in canonical form (domain-name.ts): partner
// domains, accepted domains, address spaces (connectors' and TLS policies'), certificate names, the EHLO hostname and the
// resolver's static routes. compile does it for manifests, the engine again for whatever reaches
// its admin API, so that no index is ever keyed on a spelling.
import { isIP } from 'node:net';
import { parseDomainName } from './domain-name.js';
import type { Named, RuntimeConfig, StaticRoute } from './model.js';

export interface DomainProblem {
  /** "PartnerDomain/treyresearch", "Organization/adatum", ... */
  object: string;
  /** "spec.domain", "spec.acceptedDomains[1]", ... */
  field: string;
  value: string;
  reason: string;
}

export interface CanonicalConfig {
  config: RuntimeConfig;
  problems: DomainProblem[];
}

/** A copy of the configuration with canonical names, and every name that is not one. */
export function canonicalConfig(config: RuntimeConfig): CanonicalConfig {
  const problems: DomainProblem[] = [];
  const names = (object: string) => {
    const name = (field: string, value: string): string => {
      const parsed = parseDomainName(value);
      if (parsed.ok) return parsed.name;
      problems.push({ object, field, value, reason: parsed.reason });
      return value;
    };
    /** "*" (address spaces only), "*.name" or a name. */
    const pattern = (field: string, value: string, star: boolean): string => {
      const trimmed = value.trim();
      if (star && trimmed === '*') return '*';
      if (trimmed.startsWith('*.')) return `*.${name(field, trimmed.slice(2))}`;
      return name(field, trimmed);
    };
    return { name, pattern };
  };

  const org = config.organization;
  const inOrg = names(`Organization/${org.name}`);
  const { spec } = org;
  const staticRoutes: Record<string, StaticRoute[]> = {};
  for (const [domain, routes] of Object.entries(spec.resolver.static)) {
    const key = inOrg.name(`spec.resolver.static.${domain}`, domain);
    // An IP stays as written; a host name is a name like any other.
    const hosts = routes.map((route, index) =>
      isIP(route.host) !== 0
        ? route
        : {
            ...route,
            host: inOrg.name(`spec.resolver.static.${domain}[${index}].host`, route.host),
          },
    );
    // A domain may be `constructor`: only the map's own entries count, never Object.prototype's.
    const earlier = Object.hasOwn(staticRoutes, key) ? (staticRoutes[key] ?? []) : [];
    staticRoutes[key] = [...earlier, ...hosts];
  }
  const organization = {
    ...org,
    spec: {
      ...spec,
      hostname: inOrg.name('spec.hostname', spec.hostname),
      acceptedDomains: unique(
        spec.acceptedDomains.map((d, i) => inOrg.name(`spec.acceptedDomains[${i}]`, d)),
      ),
      resolver: { ...spec.resolver, static: staticRoutes },
      ...(spec.mtaSts === undefined
        ? {}
        : {
            mtaSts: {
              ...spec.mtaSts,
              mx: unique(
                spec.mtaSts.mx.map((p, i) => inOrg.pattern(`spec.mtaSts.mx[${i}]`, p, false)),
              ),
            },
          }),
    },
  };

  const partners = config.partners.map(({ name, spec: partner }): Named<typeof partner> => {
    const inPartner = names(`PartnerDomain/${name}`);
    return {
      name,
      spec: {
        ...partner,
        domain: inPartner.name('spec.domain', partner.domain),
        certificateNames: unique(
          partner.certificateNames.map((n, i) =>
            inPartner.pattern(`spec.certificateNames[${i}]`, n, false),
          ),
        ),
      },
    };
  });

  const sendConnectors = config.sendConnectors.map(({ name, spec: connector }) => {
    const inConnector = names(`SendConnector/${name}`);
    return {
      name,
      spec: {
        ...connector,
        addressSpaces: unique(
          connector.addressSpaces.map((s, i) =>
            inConnector.pattern(`spec.addressSpaces[${i}]`, s, true),
          ),
        ),
      },
    };
  });

  const tlsPolicies = config.tlsPolicies?.map(({ name, spec: policy }) => {
    const inPolicy = names(`TlsPolicy/${name}`);
    return {
      name,
      spec: {
        ...policy,
        addressSpaces: unique(
          policy.addressSpaces.map((s, i) => inPolicy.pattern(`spec.addressSpaces[${i}]`, s, true)),
        ),
      },
    };
  });

  return {
    config: {
      ...config,
      organization,
      partners,
      sendConnectors,
      ...(tlsPolicies === undefined ? {} : { tlsPolicies }),
    },
    problems,
  };
}

/** One line per problem, for an error message. */
export function describeDomainProblems(problems: readonly DomainProblem[]): string {
  return problems
    .map(
      (p) =>
        `${p.object} ${p.field}: ${JSON.stringify(p.value)} is not a domain name (${p.reason})`,
    )
    .join('; ');
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
