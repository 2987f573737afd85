// DS109: the resolver is named validating (its AD bit decides whether DANE applies) but is not on
// this host. The AD bit travels unsigned from the resolver to us, so whoever sits on that path
// can forge it (or strip it); Postfix's DANE documentation asks for a validating resolver on
// loopback for the same reason. Empty `servers` means the system's resolvers, which may be remote.
import { isIP } from 'node:net';
import type { Diagnostic } from '../../model.js';
import { rangesBeyond } from '../../ip-coverage.js';
import { LOOPBACK_RANGES } from '../../relay-ranges.js';
import { parseHostPort } from '../../units.js';
import { warning } from '../diagnostics.js';
import { label, specValueAt } from '../manifest-objects.js';
import { theOrganization, type RuleContext } from './context.js';

export function checkValidatingResolver(context: RuleContext): Diagnostic[] {
  const organization = theOrganization(context);
  if (organization === undefined) return [];
  const { servers, validating } = organization.spec.resolver;
  if (validating !== true) return [];
  const remote = servers.filter((server) => !onLoopback(server));
  if (servers.length > 0 && remote.length === 0) return [];
  const which =
    servers.length === 0
      ? "the system's resolvers (resolver.servers is empty)"
      : `${remote.join(', ')}, beyond loopback`;
  return [
    warning(
      'DS109',
      specValueAt(organization, ['resolver', 'validating']),
      `${label(organization)} believes the DNSSEC AD bit from ${which}: anyone on the path to the resolver can forge or strip it, and with it what DANE requires`,
      'run a validating resolver (Unbound, BIND) on this host and list it as resolver.servers: [127.0.0.1]',
    ),
  ];
}

/** A loopback address, with or without a port; a name is not one (it may resolve anywhere). */
function onLoopback(server: string): boolean {
  const host = isIP(server) !== 0 ? server : parseHostPort(server)?.host;
  return (
    host !== undefined && isIP(host) !== 0 && rangesBeyond([host], LOOPBACK_RANGES).length === 0
  );
}
