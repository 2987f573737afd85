// Every rule that validate enforces (docs/troubleshooting.md lists each code), run over one loaded configuration; all problems
// are reported at once.
import type { Diagnostic } from '../../model.js';
import { error } from '../diagnostics.js';
import { checkAcceptedDomains } from './accepted-domains.js';
import { checkValidatingResolver } from './validating-resolver.js';
import { checkAdminListen } from './admin-listen.js';
import { checkCertificateValidity } from './certificate-validity.js';
import { checkConnectorOverlap } from './connector-overlap.js';
import type { Rule, RuleContext } from './context.js';
import { checkFiles } from './files.js';
import { checkInternalPolicyHosts } from './internal-policy-hosts.js';
import { checkKeyStrength } from './key-strength.js';
import { checkMtaStsListener } from './mta-sts-listener.js';
import { checkOpenRelay } from './open-relay.js';
import { checkOrganizationCertificate } from './organization-certificate.js';
import { checkPartnerConnectors } from './partner-connectors.js';
import { checkPartnerTrust } from './partner-trust.js';
import { checkReceiveAuthentication, checkRequiredTlsOffered } from './receive-authentication.js';
import { checkReferences } from './references.js';
import { checkRelayLoop } from './relay-loop.js';
import { checkRequireTls } from './require-tls.js';
import { checkSendRouting } from './send-routing.js';
import { checkTlsPolicies } from './tls-policies.js';
import { checkTlsReporting } from './tls-reporting.js';
import { checkTrustAnchors } from './trust-anchors.js';
import { checkUniqueness } from './uniqueness.js';
import { checkUnmetTlsPolicies } from './unmet-tls-policies.js';

export type { Rule, RuleContext } from './context.js';

export const RULES: readonly Rule[] = [
  checkSendRouting, // DS001
  checkReceiveAuthentication, // DS002
  checkPartnerConnectors, // DS003, DS004
  checkOrganizationCertificate, // DS005, DS006 (usage), DS105
  checkCertificateValidity, // DS006, DS101
  checkReferences, // DS007
  checkUniqueness, // DS008
  checkTrustAnchors, // DS009, DS102
  checkAcceptedDomains, // DS010
  checkConnectorOverlap, // DS011, DS012
  checkPartnerTrust, // DS013, DS103, DS106
  checkRequireTls, // DS014
  checkKeyStrength, // DS015
  checkFiles, // DS016, DS104
  checkRelayLoop, // DS017
  checkRequiredTlsOffered, // DS018
  checkOpenRelay, // DS019, DS107
  checkTlsPolicies, // DS020, DS021
  checkMtaStsListener, // DS022
  checkAdminListen, // DS108
  checkValidatingResolver, // DS109
  checkTlsReporting, // DS023, DS110
  checkInternalPolicyHosts, // DS111
  checkUnmetTlsPolicies, // DS024
];

export function runRules(context: RuleContext): Diagnostic[] {
  return RULES.flatMap((rule) => {
    try {
      return rule(context);
    } catch (cause) {
      // A rule that breaks on some input is a bug; reporting it keeps `watch` alive and the
      // configuration refused rather than half-checked.
      const at =
        context.files[0] === undefined
          ? { file: '-', line: 1, col: 1 }
          : { file: context.files[0].file, line: 1, col: 1 };
      return [
        error('LOAD', at, `internal error in rule ${rule.name}: ${(cause as Error).message}`),
      ];
    }
  });
}
