// DS007: every name an object refers to (the organization's certificate, a partner's trust
// anchors) must be an object that exists; the message offers the closest existing name.
import type { Diagnostic, Kind } from '../../model.js';
import { error } from '../diagnostics.js';
import { label, specValueAt, type ManifestObject } from '../manifest-objects.js';
import { closestName } from '../suggest.js';
import type { FieldPath } from '../yaml-documents.js';
import type { RuleContext } from './context.js';

/** The reserved trust anchor name: the platform's public CA store, with no TrustAnchor object. */
export const SYSTEM_TRUST_ANCHOR = 'system';

export function checkReferences({ objects, all }: RuleContext): Diagnostic[] {
  // Objects that failed their schema still exist: a reference to one is not DS007.
  const existing = (kind: Kind) => new Set(all.filter((o) => o.kind === kind).map((o) => o.name));
  const certificates = existing('Certificate');
  const anchors = existing('TrustAnchor');
  const diagnostics: Diagnostic[] = [];

  const missing = (
    from: ManifestObject,
    path: FieldPath,
    kind: Kind,
    name: string,
    existingNames: Set<string>,
    alternative?: string,
  ) => {
    const names = [...existingNames];
    const closest = closestName(name, alternative === undefined ? names : [...names, alternative]);
    let hint: string;
    if (closest !== undefined) hint = `did you mean \`${closest}\`?`;
    else if (names.length > 0)
      hint = `the ${kind}s are ${names.map((n) => `\`${n}\``).join(', ')}${alternative === undefined ? '' : `; or \`${alternative}\``}`;
    else
      hint = `no ${kind} is defined: add one${alternative === undefined ? '' : `, or use \`${alternative}\``}`;
    diagnostics.push(
      error(
        'DS007',
        specValueAt(from, path),
        `${label(from)} names ${label({ kind, name })}, which does not exist`,
        hint,
      ),
    );
  };

  for (const organization of objects.organizations) {
    const name = organization.spec.certificate;
    if (!certificates.has(name))
      missing(organization, ['certificate'], 'Certificate', name, certificates);
  }
  for (const partner of objects.partners) {
    partner.spec.trustAnchors.forEach((name, index) => {
      if (name === SYSTEM_TRUST_ANCHOR || anchors.has(name)) return;
      missing(partner, ['trustAnchors', index], 'TrustAnchor', name, anchors, SYSTEM_TRUST_ANCHOR);
    });
  }
  return diagnostics;
}
