// DS108: the admin API listening beyond loopback. Its bearer token is then the only thing between
// the network and apply, which can change every security decision; plans mark such a move as
// weakening, and validate says so for the manifests as they are.
import { isIP } from 'node:net';
import type { Diagnostic } from '../../model.js';
import { rangesBeyond } from '../../ip-coverage.js';
import { LOOPBACK_RANGES } from '../../relay-ranges.js';
import { parseHostPort } from '../../units.js';
import { warning } from '../diagnostics.js';
import { label, specValueAt } from '../manifest-objects.js';
import { theOrganization, type RuleContext } from './context.js';

export function checkAdminListen(context: RuleContext): Diagnostic[] {
  const organization = theOrganization(context);
  if (organization === undefined) return [];
  const listen = organization.spec.admin.listen;
  if (onLoopback(listen)) return [];
  return [
    warning(
      'DS108',
      specValueAt(organization, ['admin', 'listen']),
      `${label(organization)} has admin.listen ${listen}, beyond loopback: the admin API (apply, rollback, queues) is reachable from the network, guarded by its token alone`,
      'listen on 127.0.0.1 (the default) and reach it over SSH or a local agent; if it must be remote, firewall the port to the hosts that run domsec plan and apply',
    ),
  ];
}

/** `localhost` or a loopback address; a name is not one (127.attacker.example resolves anywhere). */
function onLoopback(listen: string): boolean {
  const parsed = parseHostPort(listen);
  if (parsed === undefined) return false;
  if (parsed.host === 'localhost') return true;
  return isIP(parsed.host) !== 0 && rangesBeyond([parsed.host], LOOPBACK_RANGES).length === 0;
}
