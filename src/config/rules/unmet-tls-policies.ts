// DS024: a TlsPolicy requires DANE or MTA-STS for a domain whose mail would not go by its MX (a
// smart host, a static route). Neither can be verified on that path, so the engine holds such
// mail (454 4.7.5) until it expires: every message to the domain would wait. Checked for the
// domains the configuration names outright (policy address spaces, connector address spaces,
// static routes); a wildcard's members are the engine's to refuse one by one.
import type { Diagnostic, PolicyLevel } from '../../model.js';
import { chooseByAddressSpace, chooseSendConnector } from '../../address-spaces.js';
import { canonicalName } from '../../certificate-names.js';
import { error } from '../diagnostics.js';
import { label, specValueAt } from '../manifest-objects.js';
import { theOrganization, type RuleContext } from './context.js';

export function checkUnmetTlsPolicies(context: RuleContext): Diagnostic[] {
  const { tlsPolicies, sendConnectors, partners } = context.objects;
  if (!tlsPolicies.some((p) => p.spec.dane === 'require' || p.spec.mtaSts === 'require')) return [];
  const organization = theOrganization(context);
  const staticRoutes = new Set(
    Object.keys(organization?.spec.resolver.static ?? {}).map((d) => canonicalName(d)),
  );
  const partnerDomains = new Set(
    partners.filter((p) => p.spec.domainSecure.send).map((p) => canonicalName(p.spec.domain)),
  );
  const concrete = (spaces: readonly string[]) =>
    spaces.filter((space) => !space.includes('*')).map((space) => canonicalName(space));
  const candidates = new Set([
    ...tlsPolicies.flatMap((p) => concrete(p.spec.addressSpaces)),
    ...sendConnectors.flatMap((c) => concrete(c.spec.addressSpaces)),
    ...staticRoutes,
  ]);
  const diagnostics: Diagnostic[] = [];
  for (const domain of [...candidates].sort()) {
    // A send-secure partner keeps mutual TLS, whatever a TlsPolicy says.
    if (domain === '' || partnerDomains.has(domain)) continue;
    const policy = chooseByAddressSpace(tlsPolicies, domain);
    if (policy === undefined) continue;
    const required = (
      [
        ['dane', 'DANE'],
        ['mtaSts', 'MTA-STS'],
      ] as const
    ).filter(([field]) => (policy.spec[field] as PolicyLevel) === 'require');
    const [first] = required;
    if (first === undefined) continue;
    const connector = chooseSendConnector(sendConnectors, domain);
    if (connector === undefined) continue;
    const path =
      'smartHosts' in connector.spec.routing
        ? `its mail goes through the smart host ${connector.spec.routing.smartHosts.join(', ')} of ${label(connector)}`
        : staticRoutes.has(domain)
          ? 'its mail goes by a static route (resolver.static)'
          : undefined;
    if (path === undefined) continue;
    const [field, what] = first;
    diagnostics.push(
      error(
        'DS024',
        specValueAt(policy, [field]),
        `${label(policy)} requires ${required.map(([, name]) => name).join(' and ')} for ${domain}, but ${path}, not its MX: ${what} cannot be verified there and all its mail would wait`,
        'route the domain by MX (routing: {dnsMx: {}}, no static route), or use optional for it',
      ),
    );
  }
  return diagnostics;
}
