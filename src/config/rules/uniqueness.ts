// DS008: one object per kind and name, one partner per domain, one Organization, and no
// TrustAnchor called `system` (the reserved name of the platform's CA store). A configuration
// without an Organization is reported here too.
import type { Diagnostic } from '../../model.js';
import { canonicalName } from '../../certificate-names.js';
import { error } from '../diagnostics.js';
import { label, nameAt, shorten, specValueAt, type ManifestObject } from '../manifest-objects.js';
import type { SourcePosition } from '../yaml-documents.js';
import type { RuleContext } from './context.js';
import { SYSTEM_TRUST_ANCHOR } from './references.js';

export function checkUniqueness({ objects, all, complete, files }: RuleContext): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  const where = (at: SourcePosition) => `${at.file}:${at.line}`;

  const byName = new Map<string, ManifestObject>();
  for (const object of all) {
    const key = label(object);
    const first = byName.get(key);
    if (first === undefined) byName.set(key, object);
    else {
      diagnostics.push(
        error(
          'DS008',
          nameAt(object),
          `two ${object.kind}s are named \`${shorten(object.name)}\` (the other is at ${where(nameAt(first))})`,
          'names are unique per kind: rename one, or remove it',
        ),
      );
    }
    if (object.kind === 'TrustAnchor' && object.name === SYSTEM_TRUST_ANCHOR) {
      diagnostics.push(
        error(
          'DS008',
          nameAt(object),
          `${label(object)}: the name \`system\` is reserved`,
          "`trustAnchors: [system]` on a partner means the platform's public CA store: give this TrustAnchor another name",
        ),
      );
    }
  }

  const byDomain = new Map<string, ManifestObject>();
  for (const partner of objects.partners) {
    const domain = canonicalName(partner.spec.domain);
    const first = byDomain.get(domain);
    if (first === undefined) byDomain.set(domain, partner);
    else {
      diagnostics.push(
        error(
          'DS008',
          specValueAt(partner, ['domain']),
          `${label(partner)} and ${label(first)} are both partners for ${partner.spec.domain}`,
          'one PartnerDomain per domain: merge them',
        ),
      );
    }
  }

  const organizations = all.filter((object) => object.kind === 'Organization');
  const [first, ...others] = organizations;
  for (const other of others) {
    diagnostics.push(
      error(
        'DS008',
        nameAt(other),
        `${label(other)}: a configuration has exactly one Organization, and ${label(first as ManifestObject)} is at ${where(nameAt(first as ManifestObject))}`,
        'one directory (or overlay) per organization or per transport node',
      ),
    );
  }
  const firstFile = files[0];
  if (first === undefined && complete && firstFile !== undefined) {
    diagnostics.push(
      error(
        'LOAD',
        { file: firstFile.file, line: 1, col: 1 },
        `no Organization in ${files.length} manifest file(s): a configuration has exactly one`,
        'add an Organization: its hostname, acceptedDomains and certificate',
      ),
    );
  }
  return diagnostics;
}
